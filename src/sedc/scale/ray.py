"""Explaining many images on a Ray cluster: :func:`iter_explain_ray` and :func:`explain_many_ray`.

The same work as :func:`sedc.scale.iter_explain` with ``devices=[...]``, spread over Ray actors
instead of local worker processes. Each actor holds its own copy of the model (one actor per
GPU on a cluster with GPUs, else a few CPU actors) and explains chunks of images with
cross-image batching (:func:`sedc.scale.chunk.run_chunk`); results are exactly what
:func:`sedc.explain` returns for each image alone. An actor that dies loses only the chunks it
was holding: their images are retried once, one image per chunk, on a fresh actor, then
reported as failed.

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
``address="auto"`` or connect from outside through Ray Client (port 10001 of the head node)::

    results = iter_explain_ray(loaders, BuiltinModel("efficientnet-lite0"),
                               address="ray://head-node:10001", mode="blur")

Recent Ray versions enable token authentication on new clusters: a Ray Client driver then
needs ``RAY_AUTH_MODE=token`` and the cluster's token (see Ray's "token-auth" documentation);
without them the connection times out ("ray client connection timeout").

Image files must be readable where the actors run (a shared file system or object storage), or
pass arrays instead of loaders. For ``runtime_env`` and other options, call ``ray.init(...)``
yourself first: a Ray session that is already initialised is used as it is and left running.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..models.outputs import in_training_mode, warn_training_mode
from ..options import ExplainOptions
from ..result import Explanation, ImageError, check_on_error, failed
from .chunk import build_model, run_chunk, unpack
from .runner import segments_for

IN_FLIGHT = 2          # chunks handed to one actor at a time
RETRIES = 1            # extra tries of an image whose actor died
MAX_CPU_ACTORS = 4
STARTUP_FAILURES = 3   # actors dying before they are ready, in a row, before giving up
INSTALL_HINT = "sedc.scale.ray needs Ray: pip install 'sedc[ray]'"


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

            def ready(self) -> str:
                return str(self.device)

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
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    segmenter: Callable[[Any], Any] | None = None,
    on_error: str = "raise",
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
        Ray cluster to connect to (``"auto"``, ``"ray://head:10001"``); None connects to
        ``RAY_ADDRESS`` when set, else starts a local instance. Ignored when Ray is already
        initialised. A connection opened here is closed when the iteration ends.
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
    chunk_size : int
        Images per actor call (explained together, with cross-image batching).
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
    """
    check_on_error(on_error)
    options = ExplainOptions.build(options, **explain_options)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    if num_actors is not None and (isinstance(num_actors, bool) or not isinstance(num_actors, int)
                                   or num_actors < 1):
        raise ValueError(f"num_actors must be a positive integer; got {num_actors!r}")
    if num_gpus_per_actor is not None and not num_gpus_per_actor >= 0:
        raise ValueError(f"num_gpus_per_actor must be >= 0; got {num_gpus_per_actor!r}")
    if not callable(classifier):
        raise TypeError(f"classifier must be an nn.Module or a picklable factory; got {type(classifier).__name__}")
    if in_training_mode(classifier):  # each actor evaluates its own copy in eval mode
        warn_training_mode(stacklevel=3)
    ray = _ray()

    started = False
    if not ray.is_initialized():
        ray.init(address=address)
        started = True
    cluster = _Cluster(ray, _cpu_copy(classifier), segmenter, (options, window), num_actors, num_gpus_per_actor)
    try:
        yield from cluster.run(_chunks(images, segments, chunk_size), on_error)
    finally:
        cluster.close()
        if started:
            ray.shutdown()


def explain_many_ray(images: Iterable[Any], classifier: Any, segments: Any = None, **options: Any) -> list:
    """Explain every image on Ray (see :func:`iter_explain_ray`); results in input order."""
    results = dict(iter_explain_ray(images, classifier, segments, **options))
    return [results[i] for i in range(len(results))]


def _cpu_copy(classifier: Any) -> Any:
    """A module with parameters off the CPU is sent as a CPU copy (nodes may lack its device)."""
    import torch

    if isinstance(classifier, torch.nn.Module):
        tensors = list(classifier.parameters()) + list(classifier.buffers())
        if any(t.device.type != "cpu" for t in tensors):
            return copy.deepcopy(classifier).cpu()
    return classifier


def _chunks(images: Iterable[Any], segments: Any, size: int) -> Iterator[list[tuple[int, Any, Any]]]:
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
    in_flight: int = 0
    exclusive: bool = False  # running a retried image alone


class _Cluster:
    """The actors, the chunks they hold, and the retries of images whose actor died."""

    def __init__(self, ray: Any, classifier: Any, segmenter: Callable | None,
                 settings: tuple[ExplainOptions, int | None], num_actors: int | None, num_gpus_per_actor: float | None) -> None:
        self.ray = ray
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        if num_gpus_per_actor is None:
            num_gpus_per_actor = 1 if gpus >= 1 else 0
        if num_gpus_per_actor > 0:
            self.n = num_actors or max(1, int(gpus // num_gpus_per_actor))
            self.actor_options: dict[str, Any] = {"num_gpus": num_gpus_per_actor}
            device, threads = "cuda", 0
        else:
            self.n = num_actors or max(1, min(MAX_CPU_ACTORS, int(cpus)))
            per_actor = cpus / self.n
            per_actor = float(max(1, int(per_actor))) if per_actor >= 1 else round(per_actor, 4)
            self.actor_options = {"num_cpus": per_actor}
            device, threads = "cpu", max(1, int(per_actor))
        self.actor_class = _actor_class(ray)
        self.args = (ray.put(classifier), device, threads, segmenter, *settings)
        self.actors: dict[int, _Actor] = {}
        self.ready_refs: dict[Any, int] = {}
        self.tasks: dict[Any, tuple[int, list]] = {}
        self._next = 0
        self.startup_failures = 0
        for _ in range(self.n):
            self.spawn()

    def spawn(self) -> None:
        key, self._next = self._next, self._next + 1
        handle = self.actor_class.options(**self.actor_options).remote(*self.args)
        self.actors[key] = _Actor(key, handle)
        self.ready_refs[handle.ready.remote()] = key

    def run(self, chunks: Iterator[list], on_error: str) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        retry: deque[list] = deque()
        tries: dict[int, int] = {}
        exhausted = False
        while True:
            for actor in list(self.actors.values()):
                while actor.ready and not actor.exclusive and actor.in_flight < IN_FLIGHT:
                    if retry and actor.in_flight == 0:
                        # A retried image runs alone on its actor: if it kills the actor again, no
                        # other image goes down with it.
                        chunk, actor.exclusive = retry.popleft(), True
                    elif retry or exhausted:
                        break
                    else:
                        chunk = next(chunks, None)
                        if chunk is None:
                            exhausted = True
                            break
                    self.tasks[actor.handle.run.remote(chunk)] = (actor.key, chunk)
                    actor.in_flight += 1
            if exhausted and not retry and not self.tasks:
                return
            done, _ = ray.wait(list(self.tasks) + list(self.ready_refs), num_returns=1)
            ref = done[0]
            if ref in self.ready_refs:
                self._started(ref)
                continue
            key, chunk = self.tasks.pop(ref)
            if key in self.actors:
                self.actors[key].in_flight -= 1
                self.actors[key].exclusive = False
            try:
                results = ray.get(ref)
            except ray.exceptions.RayTaskError as err:  # an error outside run_chunk's per-image handling
                for index, _, _ in chunk:
                    yield failed(ImageError(index, _cause(err)), on_error)
                continue
            except ray.exceptions.RayError as err:  # the actor (or its node) died
                self._lost(key)
                for triple in chunk:
                    index = triple[0]
                    if tries.get(index, 0) < RETRIES:
                        tries[index] = tries.get(index, 0) + 1
                        retry.append([triple])  # alone: an image that kills its actor takes no other down
                        continue
                    message = f"Ray actor died twice on this image: {_short(err)}"
                    yield failed(ImageError(index, message, kind="worker-died"), on_error)
                continue
            for index, packed in results:
                result = unpack(index, packed)
                yield failed(result, on_error) if isinstance(result, ImageError) else (index, result)

    def _started(self, ref: Any) -> None:
        key = self.ready_refs.pop(ref)
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            if getattr(err, "actor_init_failed", False):
                raise RuntimeError(f"a Ray actor could not build the model: {_cause(err)}") from err
            self.startup_failures += 1
            if self.startup_failures >= STARTUP_FAILURES:
                raise RuntimeError(f"{self.startup_failures} Ray actors died while starting; last: "
                                   f"{_cause(err)}") from err
            self._lost(key)
            return
        self.startup_failures = 0
        if key in self.actors:
            self.actors[key].ready = True

    def _lost(self, key: int) -> None:
        """Replace a dead actor (once, however many of its chunks report the death)."""
        actor = self.actors.pop(key, None)
        if actor is None:
            return
        try:
            self.ray.kill(actor.handle)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.spawn()

    def close(self) -> None:
        for actor in self.actors.values():
            try:
                self.ray.kill(actor.handle)
            except Exception:  # noqa: BLE001
                pass
        self.actors.clear()


def _short(err: BaseException, limit: int = 200) -> str:
    """The first line of a Ray error, at most ``limit`` characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cause(err: BaseException) -> str:
    """The cause of a Ray error: its last non-empty line (Ray puts "ValueError: reason" last)."""
    text = str(err).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
