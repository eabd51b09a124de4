"""The Ray actors of :func:`sedc.scale.ray.iter_explain_ray`: handing out chunks, collecting
results, and putting the images of dead actors back in the queue by the retry rule of
:mod:`sedc.scale.recovery`.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..base.errors import ImageError, RayClusterError, WorkerError
from ..base.options import ExplainOptions
from .chunk import relay_warnings, run_chunk, unpack, worker_model
from .recovery import Chunk, Recovery, failed

IN_FLIGHT = 2          # chunks handed to one actor at a time
MAX_CPU_ACTORS = 4
STARTUP_FAILURES = 3   # actors dying before they are ready, in a row, before giving up
NODE_CHECK_TIMEOUT = 1.0  # seconds to reach a dead actor's raylet before calling its node gone
NO_ACTOR_LIMIT = 300.0    # seconds with work left and no actor ready, before giving up


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
                self.model, self.warnings = worker_model(classifier, self.device)
                self.segmenter, self.options, self.window = segmenter, options, window

            def ready(self) -> tuple[str, list[str]]:
                """Its node's id, and the warnings for the driver to issue (once per run)."""
                import ray

                return ray.get_runtime_context().get_node_id(), self.warnings

            def run(self, chunk: list) -> list:
                return list(run_chunk(self.model, self.device, chunk, self.segmenter, self.options,
                                      self.window))

        _ACTOR_CLASS = ray.remote(max_restarts=0, max_task_retries=0)(SedcActor)
    return _ACTOR_CLASS


@dataclass
class _Actor:
    key: int
    handle: Any
    ready: bool = False
    node: str = "?"
    raylet: tuple[str, int] | None = None            # its node's raylet (host, port)
    chunks: deque = field(default_factory=deque)      # refs of its calls, in submission order


class ActorPool:
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
        self.recovery = Recovery(1, IN_FLIGHT)          # sized by run()
        self.fresh: Iterator[list] = iter(())
        self.exhausted = False
        self._next = 0
        self.startup_failures = 0
        self.warned: set[str] = set()                   # actors' warnings issued so far
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
        self.fresh, self.recovery = chunks, Recovery(chunk_size, IN_FLIGHT)
        while True:
            self.dispatch()
            if self.exhausted and not self.recovery.pending and not self.tasks:
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
        """Give every ready actor up to IN_FLIGHT chunks: images to run again first, then new ones."""
        for actor in [a for a in self.actors.values() if a.ready]:
            while len(actor.chunks) < IN_FLIGHT:
                held = [self.tasks[ref][1] for ref in actor.chunks]
                chunk = self.recovery.next_chunk(held, self._fresh_chunk)
                if chunk is None:
                    break
                ref = actor.handle.run.remote(chunk)
                self.tasks[ref] = (actor.key, chunk)
                actor.chunks.append(ref)

    def _fresh_chunk(self) -> Chunk | None:
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
            for index, _ in chunk:
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
        survivors = sum(a.ready for a in self.actors.values())
        lost = self.recovery.died(running or [], [t for chunk in queued for t in chunk], survivors)
        self._kill(actor)
        self.spawn()
        self.on_event(RayEvent(actor.node, self._node_gone(actor), lost.requeued, len(lost.given_up),
                               survivors, _short(err)))
        for index, _ in lost.given_up:
            yield failed(self.recovery.given_up(index, f"Ray actor on {actor.node}", _short(err)), on_error)

    def _finished(self, ref: Any) -> list | None:
        """The results of a call of a dead actor that finished before it died, else None."""
        ready, _ = self.ray.wait([ref], timeout=0)
        if not ready:
            return None
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError:
            return None

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
            node_id, caught = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            if getattr(err, "actor_init_failed", False):
                raise WorkerError(f"a Ray actor could not build the model: {_cause(err)}") from err
            self.startup_failures += 1
            if self.startup_failures >= STARTUP_FAILURES:
                raise WorkerError(f"{self.startup_failures} Ray actors died while starting; last: "
                                   f"{_cause(err)}") from err
            self._replace(key)
            return
        self.startup_failures = 0
        relay_warnings(caught, self.warned, stacklevel=4)
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


def log_event(event: RayEvent) -> None:
    """The default ``on_event``: a warning on this module's logger."""
    logging.getLogger(__name__).warning("%s", event)


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
