"""Explaining many images on a Ray cluster: :func:`iter_explain_ray` and :func:`explain_many_ray`.

The same work as :func:`sedc.scale.iter_explain` with ``devices=[...]``, spread over Ray actors
instead of local worker processes. Each actor holds its own copy of the model (one actor per
GPU on a cluster with GPUs, else a few CPU actors) and explains chunks of images with
cross-image batching (:func:`sedc.scale.chunk.run_chunk`); results are exactly what
:func:`sedc.explain` returns for each image alone.

Connecting (:mod:`sedc.scale.ray_connect`): ``address`` may be ``"local"`` (a new local
instance), ``"auto"``, ``"HOST:PORT"`` (the GCS) or ``"ray://HOST:PORT"`` (Ray Client). A
cluster that cannot be reached, is not Ray or refuses the token raises
:class:`~sedc.scale.ray_connect.RayConnectError` within ``timeout`` seconds, before any image
is sent. Token auth: the cluster's token must be in ``RAY_AUTH_TOKEN``, the file
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``; token mode is turned on when the cluster asks
for it (``RAY_AUTH_MODE=disabled`` keeps it off).

Recovery: when an actor dies (its process, or its whole node), the chunks it held go back to the
shared queue. The chunk it was running counts one death for each of its images; the chunks
queued behind it had not started and count none. Images with one death are chunked again and
spread over every actor; images with two deaths are retried one per call, on an actor that
holds nothing else, so that an image that kills its actor takes no other image down with it
and is known to be the one that did; an image is given up (``ImageError`` with
``kind="worker-died"``: "Ray actor died twice") when its actor dies while explaining it alone,
after an earlier death. A replacement actor is started for each dead one (it starts when the
cluster has room, e.g. when the autoscaler adds a node). Each death is reported to ``on_event``.

Install with ``pip install 'sedc[ray]'``. Everything an actor receives must be picklable and
importable on the cluster's nodes: the classifier (an ``nn.Module`` or a zero-argument
factory), the images or loaders, and the segmenter. Classes and functions defined in your
driver script are shipped by value; those of your own modules must be installed on the nodes or
shipped with ``ray.init(runtime_env={"py_modules": [...]})`` (or ``"working_dir"``).

Examples
--------
On one machine (starts a local Ray instance for the duration of the call):

>>> import functools, sedc
>>> from sedc.io import load_image
>>> from sedc.scale.ray import BuiltinModel, iter_explain_ray
>>> loaders = [functools.partial(load_image, p, 224) for p in paths]           # doctest: +SKIP
>>> for index, e in iter_explain_ray(loaders, BuiltinModel("efficientnet-lite0"),
...                                  mode="blur", on_error="return"):             # doctest: +SKIP
...     print(paths[index], e.segments)

On a cluster: start it (``ray start --head`` on the head node, ``ray start --address=HEAD:6379``
on the others, or a KubeRay / cloud launcher cluster), then either run the driver on a node with
``address="auto"`` or ``"HEAD:6379"``, or connect from outside through Ray Client (port 10001 of
the head node)::

    results = iter_explain_ray(loaders, BuiltinModel("efficientnet-lite0"),
                               address="ray://head-node:10001", mode="blur")

Image files must be readable where the actors run (a shared file system or object storage), or
pass arrays instead of loaders. For ``runtime_env`` and other options, call ``ray.init(...)``
yourself first: a Ray session that is already initialised is used as it is and left running.
Ray's own driver messages (a dead node's log dump, for instance) are printed by Ray to
``sys.stdout``; the ``sedc`` command line sends them to ``DIR/ray.log`` instead.
"""

from __future__ import annotations

import copy
import logging
import math
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..options import ExplainOptions
from ..result import Explanation, ImageError, check_on_error, failed
from .chunk import Triple, build_model, run_chunk, unpack
from .ray_connect import DEFAULT_TIMEOUT, RayConnectError, connect
from .runner import segments_for

IN_FLIGHT = 2          # chunks handed to one actor at a time
MAX_CPU_ACTORS = 4
STARTUP_FAILURES = 3   # actors dying before they are ready, in a row, before giving up
NODE_CHECK_TIMEOUT = 1.0  # seconds to reach a dead actor's raylet before calling its node gone
NO_ACTOR_LIMIT = 300.0    # seconds with work left and no actor ready, before giving up
INSTALL_HINT = "sedc.scale.ray needs Ray: pip install 'sedc[ray]'"

__all__ = ["BuiltinModel", "RayClusterError", "RayConnectError", "RayEvent", "explain_many_ray", "iter_explain_ray"]


class RayClusterError(RuntimeError):
    """The cluster can no longer run the work (no actor could start for NO_ACTOR_LIMIT seconds):
    a failure of the whole run, not of its images."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from err
    return ray


@dataclass(frozen=True)
class BuiltinModel:
    """A picklable factory of a built-in model: ``BuiltinModel("efficientnet-lite0")()`` is its module.

    Each actor calls it to build its own copy (weights are read where the actor runs).
    """

    name: str = "efficientnet-lite0"

    def __call__(self) -> Any:
        from ..models import load

        return load(self.name).module


@dataclass(frozen=True)
class RayEvent:
    """An actor that died during a run, and what became of the images it held.

    Attributes
    ----------
    node : str
        Where the actor ran: ``"IP (node id prefix)"``.
    node_gone : bool or None
        Whether its node's raylet no longer answers (the whole node died); None when unknown
        (through Ray Client, or before the actor reported its node).
    requeued : int
        Its images sent back to the queue (retried by the surviving actors).
    given_up : int
        Its images given up (their actor died twice on them).
    survivors : int
        Actors still running after the death.
    error : str
        Ray's error, first line.
    """

    node: str
    node_gone: bool | None
    requeued: int
    given_up: int
    survivors: int
    error: str

    def __str__(self) -> str:
        what = "node" if self.node_gone else "actor on node"
        gone = "died (its raylet no longer answers)" if self.node_gone else "died"
        text = (f"Ray {what} {self.node} {gone}: {_plural(self.requeued, 'image')} back in the queue "
                f"for {_plural(self.survivors, 'surviving actor')}")
        return text + (f", {self.given_up} given up (died twice)" if self.given_up else "")


_ACTOR_CLASS: Any = None


def _actor_class(ray: Any) -> Any:
    """The Ray actor class (defined on first use, so that importing sedc.scale.ray needs no Ray)."""
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:

        class SedcActor:
            """Holds one model copy on one device and explains chunks of images."""

            def __init__(self, classifier: Any, device: str, threads: int, segmenter: Callable | None,
                         options: ExplainOptions, window: int | None) -> None:
                import torch

                if threads:
                    torch.set_num_threads(threads)
                self.device = torch.device(device)
                self.model = build_model(classifier, self.device)
                self.segmenter, self.options, self.window = segmenter, options, window

            def ready(self) -> tuple[str, str]:
                import ray

                return str(self.device), ray.get_runtime_context().get_node_id()

            def run(self, chunk: list) -> list:
                return list(run_chunk(self.model, self.device, chunk, self.segmenter, self.options,
                                      self.window))

        _ACTOR_CLASS = ray.remote(max_restarts=0, max_task_retries=0)(SedcActor)
    return _ACTOR_CLASS


def iter_explain_ray(
    images: Iterable[Any],
    classifier: Any,
    segments: Any = None,
    *,
    address: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    segmenter: Callable[[Any], Any] | None = None,
    on_error: str = "raise",
    on_event: Callable[[RayEvent], None] | None = None,
    chunk_size: int = 4,
    window: int | None = None,
    options: ExplainOptions | None = None,
    **explain_options: Any,
) -> Iterator[tuple[int, Explanation | ImageError]]:
    """Explain many images on Ray actors, yielding ``(index, Explanation)`` as chunks finish.

    Parameters
    ----------
    images : iterable
        Images (anything :func:`sedc.explain` accepts) or picklable zero-argument loaders
        (``functools.partial(sedc.io.load_image, path, 224)``); read lazily, a few chunks ahead.
    classifier : torch.nn.Module or callable
        A picklable ``nn.Module`` (sent as a CPU copy) or a picklable zero-argument factory
        returning one, such as :class:`BuiltinModel` or ``functools.partial(build, ...)``.
    segments : array, or sequence of arrays, optional
        One label map for all images, one per image, or None (``segmenter`` or quickshift).
    address : str, optional
        ``"local"`` (a new local instance), ``"auto"``, ``"HOST:PORT"`` or
        ``"ray://HOST:PORT"``; None connects to ``RAY_ADDRESS`` when set, else starts a local
        instance. Ignored when Ray is already initialised. A connection opened here is closed
        when the iteration ends.
    timeout : float
        Seconds to connect to a cluster; past them, or as soon as the cause is known,
        :class:`~sedc.scale.ray_connect.RayConnectError` names the address and the cause
        (``refused``, ``timeout``, ``auth``, ...).
    num_actors : int, optional
        Actors (model copies). Default: one per GPU, or without GPUs ``min(4, cluster CPUs)``.
    num_gpus_per_actor : float, optional
        GPUs reserved by each actor (device ``cuda``); fractions share a GPU. Default: 1 when
        the cluster has GPUs, else 0 (CPU actors, each with ``cluster CPUs // num_actors``
        threads).
    segmenter : callable, optional
        Picklable ``segmenter(image) -> labels`` for images without given segments.
    on_error : {"raise", "return"}
        ``"return"`` yields ``(index, ImageError)`` for a failed image and goes on; ``"raise"``
        raises the first :class:`sedc.ImageError`.
    on_event : callable, optional
        Called with a :class:`RayEvent` for each actor that dies mid-run (default: a warning on
        the ``sedc.scale.ray`` logger).
    chunk_size : int
        Most images per actor call (explained together, with cross-image batching). With a
        sized input, chunks shrink so that every actor gets work.
    window : int, optional
        Searches an actor runs at once (see :class:`sedc.scale.runner.Runner`).
    options : ExplainOptions, optional
        The search settings; ``**explain_options`` override single ones.
    **explain_options
        Any :class:`sedc.ExplainOptions` field (``mode``, ``target``, ``batch_size``, ...),
        as for :func:`sedc.explain` (limits are per image).

    Yields
    ------
    (int, Explanation or ImageError)

    Raises
    ------
    RayConnectError
        Before the first result, when the cluster cannot be joined.
    RayClusterError
        When no actor runs and none could start for ``NO_ACTOR_LIMIT`` seconds (the cluster
        lost its nodes, or never had the resources an actor asks for).
    """
    check_on_error(on_error)
    options = ExplainOptions.build(options, **explain_options)
    _check_sizes(chunk_size, num_actors, num_gpus_per_actor)
    if not callable(classifier):
        raise TypeError(f"classifier must be an nn.Module or a picklable factory; got {type(classifier).__name__}")
    ray = _ray()

    started = False
    if not ray.is_initialized():
        connect(ray, address, timeout, log_to_driver=False, logging_level=logging.WARNING)
        started = True
    try:
        pool = _Pool(ray, _cpu_copy(classifier), segmenter, (options, window), num_actors, num_gpus_per_actor,
                     on_event or _log_event)
        try:
            size = _fair_chunk_size(images, chunk_size, pool.n)
            yield from pool.run(_chunks(images, segments, size), chunk_size, on_error)
        finally:
            pool.close()
    finally:
        if started:
            ray.shutdown()


def explain_many_ray(images: Iterable[Any], classifier: Any, segments: Any = None, **options: Any) -> list:
    """Explain every image on Ray (see :func:`iter_explain_ray`); results in input order."""
    results = dict(iter_explain_ray(images, classifier, segments, **options))
    return [results[i] for i in range(len(results))]


def _check_sizes(chunk_size: Any, num_actors: Any, num_gpus_per_actor: Any) -> None:
    """Usage errors for the sizes, raised before anything starts."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    if num_actors is not None and (isinstance(num_actors, bool) or not isinstance(num_actors, int)
                                   or num_actors < 1):
        raise ValueError(f"num_actors must be a positive integer; got {num_actors!r}")
    if num_gpus_per_actor is not None and not num_gpus_per_actor >= 0:
        raise ValueError(f"num_gpus_per_actor must be >= 0; got {num_gpus_per_actor!r}")


def _log_event(event: RayEvent) -> None:
    logging.getLogger(__name__).warning("%s", event)


def _cpu_copy(classifier: Any) -> Any:
    """A module with parameters off the CPU is sent as a CPU copy (nodes may lack its device)."""
    import torch

    if isinstance(classifier, torch.nn.Module):
        tensors = list(classifier.parameters()) + list(classifier.buffers())
        if any(t.device.type != "cpu" for t in tensors):
            return copy.deepcopy(classifier).cpu()
    return classifier


def _fair_chunk_size(images: Iterable[Any], chunk_size: int, actors: int) -> int:
    """``chunk_size``, or less when a sized input would otherwise leave actors without work."""
    try:
        n = len(images)  # type: ignore[arg-type]
    except TypeError:
        return chunk_size
    return max(1, min(chunk_size, math.ceil(n / (actors * IN_FLIGHT))))


def _chunks(images: Iterable[Any], segments: Any, size: int) -> Iterator[list[Triple]]:
    chunk = []
    for index, item in enumerate(images):
        chunk.append((index, item, segments_for(segments, index)))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class _Actor:
    key: int
    handle: Any
    ready: bool = False
    node: str = "?"
    raylet: tuple[str, int] | None = None            # its node's raylet (host, port)
    chunks: deque = field(default_factory=deque)      # refs of its calls, in submission order


class _Pool:
    """The actors, the chunks they hold, and the queue of images whose actor died."""

    def __init__(self, ray: Any, classifier: Any, segmenter: Callable | None,
                 settings: tuple[ExplainOptions, int | None], num_actors: int | None,
                 num_gpus_per_actor: float | None, on_event: Callable[[RayEvent], None]) -> None:
        self.ray, self.on_event = ray, on_event
        device, threads = self._plan(num_actors, num_gpus_per_actor)
        self.actor_class = _actor_class(ray)
        self.args = (ray.put(classifier), device, threads, segmenter, *settings)
        self.actors: dict[int, _Actor] = {}
        self.starting: dict[Any, int] = {}              # ready() ref -> actor key
        self.tasks: dict[Any, tuple[int, list]] = {}    # run() ref -> (actor key, chunk)
        self.retry: deque[list] = deque()               # chunks of images to redo
        self.deaths: dict[int, int] = {}                # image index -> deaths while running
        self.fresh: Iterator[list] = iter(())
        self.exhausted = False
        self._next = 0
        self.startup_failures = 0
        for _ in range(self.n):
            self.spawn()

    def _plan(self, num_actors: int | None, num_gpus_per_actor: float | None) -> tuple[str, int]:
        """Set the number of actors and their resources; returns (device, torch threads)."""
        resources = self.ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        if num_gpus_per_actor is None:
            num_gpus_per_actor = 1 if gpus >= 1 else 0
        if num_gpus_per_actor > 0:
            self.n = num_actors or max(1, int(gpus // num_gpus_per_actor))
            self.actor_options: dict[str, Any] = {"num_gpus": num_gpus_per_actor}
            return "cuda", 0
        self.n = num_actors or max(1, min(MAX_CPU_ACTORS, int(cpus)))
        per_actor = cpus / self.n
        per_actor = float(max(1, int(per_actor))) if per_actor >= 1 else round(per_actor, 4)
        self.actor_options = {"num_cpus": per_actor}
        return "cpu", max(1, int(per_actor))

    def spawn(self) -> None:
        key, self._next = self._next, self._next + 1
        handle = self.actor_class.options(**self.actor_options).remote(*self.args)
        self.actors[key] = _Actor(key, handle)
        self.starting[handle.ready.remote()] = key

    def run(self, chunks: Iterator[list], chunk_size: int, on_error: str) -> Iterator[tuple[int, Any]]:
        """Hand out chunks, collect results, and requeue the images of actors that die."""
        self.fresh, self.chunk_size = chunks, chunk_size
        while True:
            self.dispatch()
            if self.exhausted and not self.retry and not self.tasks:
                return
            done = self._wait()
            if done[0] in self.starting:
                self._started(done[0])
            else:
                yield from self.collect(done[0], on_error)

    def _wait(self) -> list:
        """The next finished call or started actor; raises when no actor runs for too long."""
        refs = list(self.tasks) + list(self.starting)
        if self.tasks or any(a.ready for a in self.actors.values()):
            return self.ray.wait(refs, num_returns=1)[0]
        done, _ = self.ray.wait(refs, num_returns=1, timeout=NO_ACTOR_LIMIT)
        if not done:
            raise RayClusterError(f"no Ray actor could start in {NO_ACTOR_LIMIT:g} s (each needs "
                                  f"{self.actor_options}; the cluster has {self.ray.available_resources()} "
                                  "free): the images not yet done are left for a resumed run")
        return done

    def dispatch(self) -> None:
        """Give every ready actor up to IN_FLIGHT chunks: retried images first, then new ones.

        An image with two deaths runs on an actor that holds nothing else: if that actor dies,
        there is no doubt about which image it died on (an actor that exits may lose the reply
        of the call it had just finished).
        """
        for actor in [a for a in self.actors.values() if a.ready]:
            while len(actor.chunks) < IN_FLIGHT and not self._holds_alone(actor):
                if self.retry and self._alone(self.retry[0]) and actor.chunks:
                    break
                chunk = self.retry.popleft() if self.retry else self._fresh_chunk()
                if chunk is None:
                    return
                ref = actor.handle.run.remote(chunk)
                self.tasks[ref] = (actor.key, chunk)
                actor.chunks.append(ref)

    def _alone(self, chunk: list) -> bool:
        """Whether ``chunk`` is the single-image retry of an image that died twice."""
        return len(chunk) == 1 and self.deaths.get(chunk[0][0], 0) >= 2

    def _holds_alone(self, actor: _Actor) -> bool:
        return any(self._alone(self.tasks[ref][1]) for ref in actor.chunks)

    def _fresh_chunk(self) -> list | None:
        if self.exhausted:
            return None
        chunk = next(self.fresh, None)
        self.exhausted = chunk is None
        return chunk

    def collect(self, ref: Any, on_error: str) -> Iterator[tuple[int, Any]]:
        """The results of a finished call; a dead actor's chunks go back to the queue."""
        key, chunk = self.tasks[ref]
        try:
            results = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as err:  # an error outside run_chunk's per-image handling
            self._forget(ref)
            for index, _, _ in chunk:
                yield failed(ImageError(index, _cause(err)), on_error)
            return
        except self.ray.exceptions.RayError as err:  # the actor or its node died
            yield from self.lost(self.actors[key], err, on_error)
            return
        self._forget(ref)
        yield from _unpacked(results, on_error)

    def _forget(self, ref: Any) -> None:
        key, _ = self.tasks.pop(ref)
        self.actors[key].chunks.remove(ref)

    def lost(self, actor: _Actor, err: BaseException, on_error: str) -> Iterator[tuple[int, Any]]:
        """Requeue what a dead actor held; give up images that died twice, the last time alone."""
        del self.actors[actor.key]
        running, queued = None, []
        for ref in actor.chunks:  # oldest first: finished calls, the running one, then queued ones
            _, chunk = self.tasks.pop(ref)
            results = self._finished(ref)
            if results is not None:
                yield from _unpacked(results, on_error)
            elif running is None:
                running = chunk
            else:
                queued.append(chunk)
        given_up, again = self._count_deaths(running or [])
        again += [triple for chunk in queued for triple in chunk]
        self._requeue(again)
        self._kill(actor)
        self.spawn()
        self.on_event(RayEvent(actor.node, self._node_gone(actor), len(again), len(given_up),
                               sum(a.ready for a in self.actors.values()), _short(err)))
        for index, _, _ in given_up:
            message = f"Ray actor died twice on this image, the last time with it alone: {_short(err)}"
            yield failed(ImageError(index, message, kind="worker-died"), on_error)

    def _finished(self, ref: Any) -> list | None:
        """The results of a call of a dead actor that finished before it died, else None."""
        ready, _ = self.ray.wait([ref], timeout=0)
        if not ready:
            return None
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError:
            return None

    def _count_deaths(self, running: list[Triple]) -> tuple[list[Triple], list[Triple]]:
        """One death for each image of the running chunk: (given up, to retry)."""
        given_up, again = [], []
        for triple in running:
            index = triple[0]
            self.deaths[index] = self.deaths.get(index, 0) + 1
            (given_up if self.deaths[index] >= 2 and len(running) == 1 else again).append(triple)
        return given_up, again

    def _requeue(self, triples: list[Triple]) -> None:
        """Images with two deaths one per chunk; the others chunked to spread over the actors."""
        alone = [t for t in triples if self.deaths.get(t[0], 0) >= 2]
        shared = [t for t in triples if self.deaths.get(t[0], 0) < 2]
        self.retry.extendleft([t] for t in reversed(alone))
        alive = max(1, sum(a.ready for a in self.actors.values()))
        size = max(1, min(self.chunk_size, math.ceil(len(shared) / (alive * IN_FLIGHT))))
        self.retry.extend(shared[i:i + size] for i in range(0, len(shared), size))

    def _node_gone(self, actor: _Actor) -> bool | None:
        """Whether the dead actor's raylet stopped answering (None: not known from here)."""
        if actor.raylet is None or self._through_client():
            return None
        try:
            socket.create_connection(actor.raylet, timeout=NODE_CHECK_TIMEOUT).close()
        except OSError:
            return True
        return False

    def _through_client(self) -> bool:
        try:
            return bool(self.ray.util.client.ray.is_connected())
        except Exception:  # noqa: BLE001
            return False

    def _started(self, ref: Any) -> None:
        key = self.starting.pop(ref)
        try:
            _, node_id = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            if getattr(err, "actor_init_failed", False):
                raise RuntimeError(f"a Ray actor could not build the model: {_cause(err)}") from err
            self.startup_failures += 1
            if self.startup_failures >= STARTUP_FAILURES:
                raise RuntimeError(f"{self.startup_failures} Ray actors died while starting; last: "
                                   f"{_cause(err)}") from err
            self._replace(key)
            return
        self.startup_failures = 0
        if key in self.actors:
            actor = self.actors[key]
            actor.ready = True
            actor.node, actor.raylet = self._where(node_id)

    def _where(self, node_id: str) -> tuple[str, tuple[str, int] | None]:
        """``"IP (id prefix)"`` of a node and its raylet's address."""
        for node in self.ray.nodes():
            if node.get("NodeID") == node_id:
                host, port = node.get("NodeManagerAddress"), node.get("NodeManagerPort")
                return f"{host} ({node_id[:8]})", (host, int(port)) if host and port else None
        return f"? ({node_id[:8]})", None

    def _replace(self, key: int) -> None:
        """Replace an actor that died before it was ready."""
        actor = self.actors.pop(key, None)
        if actor is not None:
            self._kill(actor)
            self.spawn()

    def _kill(self, actor: _Actor) -> None:
        try:
            self.ray.kill(actor.handle)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def close(self) -> None:
        for actor in self.actors.values():
            self._kill(actor)
        self.actors.clear()


def _unpacked(results: list, on_error: str) -> Iterator[tuple[int, Any]]:
    for index, packed in results:
        result = unpack(index, packed)
        yield failed(result, on_error) if isinstance(result, ImageError) else (index, result)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _short(err: BaseException, limit: int = 200) -> str:
    """The first line of a Ray error, at most ``limit`` characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cause(err: BaseException) -> str:
    """The cause of a Ray error: its last non-empty line (Ray puts "ValueError: reason" last)."""
    text = str(err).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
