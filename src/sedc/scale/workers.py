"""Worker processes: one per device, each with its own model copy (``devices=[...]``).

Images are handed out in small chunks (a chunk is explained with cross-image batching inside the
worker, :func:`~sedc.scale.chunk.run_chunk`) and results stream back one image at a time.

Each worker has channels of its own: a task queue from the parent and a one-way result pipe to
the parent. Nothing is shared between workers, so a worker that dies (even ``os._exit`` in the
middle of a write) cannot leave a lock held that another worker waits on; the parent watches
every worker's pipe and process sentinel together and learns of a death at once. A dead
worker's images go back to the queue, or are given up, by the retry rule of
:mod:`sedc.scale.recovery` (the chunk it was running is its oldest chunk with images not yet
returned: a worker runs its chunks in order), and a fresh worker replaces it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from ..base.errors import ImageError, InputError, InputTypeError, WorkerError
from ..base.options import ExplainOptions
from ..base.outputs import warn_training_mode
from ..base.validate import resolve_device
from .chunk import relay_warnings, run_chunk, unpack, worker_model
from .recovery import Chunk, Recovery, failed
from .task import IndexedTask, as_tasks

CHUNK = 4          # images per task
IN_FLIGHT = 2      # chunks handed to one worker at a time
POLL_S = 1.0       # longest wait for a message before checking the workers again
START_METHOD = "spawn"  # a fresh interpreter per worker (safe with CUDA and threads); tests may
                        # use "forkserver", which starts workers faster and behaves the same here


def parse_devices(devices: Any) -> list[str]:
    """``"all"``, ``"cuda:0,cuda:1"``, ``"cpu,cpu"`` or a sequence → list of device strings."""
    if isinstance(devices, str):
        if devices == "all":
            if torch.cuda.is_available():
                return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
            return ["cpu"]
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    out = [str(resolve_device(d)) for d in devices]
    if not out:
        raise InputError("devices must name at least one device, e.g. 'all', 'cuda:0,cuda:1' or 'cpu,cpu'")
    return out


def _worker_main(payload: bytes, device: str, threads: int, tasks: Any, results: Connection) -> None:
    """Worker process: build the model, then explain chunks until told to stop (None).

    The classifier, segmenter and options arrive pickled (``payload``) and each chunk as
    ``(indices, pickled chunk)``, so that what cannot be unpickled here is reported, not fatal.
    """
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    try:
        classifier, segmenter, options, window = pickle.loads(payload)
        model, caught = worker_model(classifier, dev)
    except Exception as err:  # noqa: BLE001
        results.send(("fatal", f"{type(err).__name__}: {err}"))
        return
    for text in caught:  # the parent warns, once per run
        results.send(("warning", text))
    while True:
        task = tasks.get()
        if task is None:
            return
        indices, blob = task
        try:
            chunk = pickle.loads(blob)
        except Exception as err:  # noqa: BLE001 - e.g. a loader whose module is not importable here
            reason = f"cannot load the image in the worker process: {type(err).__name__}: {err}"
            for index in indices:
                results.send(("result", index, ("error", reason)))
            continue
        for index, packed in run_chunk(model, dev, chunk, segmenter, options, window):
            results.send(("result", index, packed))


def _dump(chunk: list[IndexedTask]) -> tuple[bytes | None, list[IndexedTask], list[tuple[int, str]]]:
    """Pickle ``chunk`` for a worker: (bytes, sendable tasks, (index, error) of unpicklable ones)."""
    try:
        return pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL), chunk, []
    except Exception:  # noqa: BLE001 - find the culprits
        pass
    good, bad = [], []
    for task in chunk:
        try:
            pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
            good.append(task)
        except Exception as err:  # noqa: BLE001
            bad.append((task[0], f"cannot send the image to a worker process ({type(err).__name__}: {err}); "
                                   "use module-level loader functions or functools.partial"))
    return (pickle.dumps(good, protocol=pickle.HIGHEST_PROTOCOL) if good else None), good, bad


def _threads_per_worker(devices: Sequence[str]) -> int:
    n_cpu_workers = sum(1 for d in devices if d.startswith("cpu"))
    if not n_cpu_workers:
        return 0
    return max(1, (os.cpu_count() or 1) // n_cpu_workers)


@dataclass
class _Worker:
    """One worker process and its private channels."""

    process: Any
    device: str
    tasks: Any
    results: Connection
    held: dict[int, IndexedTask] = field(default_factory=dict)   # images sent, not yet returned
    chunks: list[Chunk] = field(default_factory=list)       # chunks with such images, oldest first

    def returned(self, index: int) -> None:
        """Image ``index`` came back: forget it, and its chunk once all of the chunk came back."""
        self.held.pop(index, None)
        self.chunks = [chunk for chunk in self.chunks if any(t[0] in self.held for t in chunk)]

    def lost(self) -> tuple[list[IndexedTask], list[IndexedTask], bool]:
        """A dead worker's images not yet returned: ``(running, queued, running alone)``.

        It runs its chunks in order, so the chunk it was running is the oldest it holds.
        """
        if not self.chunks:
            return [], [], False
        unfinished = [[t for t in chunk if t[0] in self.held] for chunk in self.chunks]
        return unfinished[0], [t for part in unfinished[1:] for t in part], len(self.chunks[0]) == 1


class _Pool:
    """The worker processes, the images each holds, and their replacement when one dies."""

    def __init__(self, payload: bytes, devices: list[str], ctx: Any) -> None:
        self.ctx, self.payload = ctx, payload
        self.threads = _threads_per_worker(devices)
        self.workers: list[_Worker] = [self.spawn(device) for device in devices]

    def spawn(self, device: str) -> _Worker:
        tasks = self.ctx.Queue()
        receive, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_worker_main, daemon=True, name=f"sedc-worker-{device}",
                                args=(self.payload, device, self.threads, tasks, send))
        proc.start()
        send.close()  # the worker holds the only write end: its death closes the pipe (EOF here)
        return _Worker(proc, device, tasks, receive)

    def give(self, worker: _Worker, chunk: Chunk) -> list[tuple[int, str]]:
        """Send ``chunk`` to ``worker``; returns ``(index, error)`` of images that cannot be sent."""
        blob, good, bad = _dump(chunk)
        for task in good:
            worker.held[task[0]] = task
        if blob is not None:
            worker.chunks.append(good)
            worker.tasks.put(([t[0] for t in good], blob))
        return bad

    def receive(self, timeout: float) -> list[tuple[_Worker, Any]]:
        """Messages that arrived within ``timeout`` s, as ``(worker, message)``; ``None`` = died."""
        handles = {}
        for worker in self.workers:
            handles[worker.results] = worker
            handles[worker.process.sentinel] = worker
        out: list[tuple[_Worker, Any]] = []
        dead: set[int] = set()
        for handle in wait(list(handles), timeout=timeout):
            worker = handles[handle]
            if id(worker) in dead:
                continue
            messages, alive = _drain(worker.results)
            out += [(worker, message) for message in messages]
            if not alive or not worker.process.is_alive():
                dead.add(id(worker))
                out.append((worker, None))
        return out

    def replace(self, worker: _Worker) -> _Worker:
        """Swap a dead ``worker`` for a fresh one on the same device."""
        _discard(worker)
        fresh = self.spawn(worker.device)
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.is_alive():
                try:
                    worker.tasks.put(None)
                except (OSError, ValueError):
                    pass
        for worker in self.workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=5)
            _discard(worker)


def _drain(conn: Connection) -> tuple[list[Any], bool]:
    """Every complete message waiting in ``conn``; False as second item when the pipe is closed."""
    messages = []
    try:
        while conn.poll():
            messages.append(conn.recv())
    except (EOFError, OSError):
        return messages, False
    return messages, True


def _discard(worker: _Worker) -> None:
    """Close a worker's channels without waiting on data it will never read."""
    worker.tasks.cancel_join_thread()
    worker.tasks.close()
    worker.results.close()


class _Dispatch:
    """The parent's side of a worker run: hands out chunks, collects results, retries the dead."""

    def __init__(self, pool: _Pool, todo: list[IndexedTask], on_error: str) -> None:
        self.pool, self.todo, self.on_error = pool, todo, on_error
        self.recovery = Recovery(CHUNK, IN_FLIGHT)
        self.remaining = len(todo)
        self.done: set[int] = set()
        self.warned: set[str] = set()

    def run(self) -> Iterator[tuple[int, Any]]:
        while self.remaining:
            yield from self._hand_out()
            if not self.remaining:
                return
            for worker, message in self.pool.receive(POLL_S):
                if message is None:
                    yield from self._died(worker)
                elif message[0] == "fatal":
                    raise WorkerError(f"worker on {worker.device} could not start: {message[1]}")
                elif message[0] == "warning":
                    self._warn(message[1])
                else:
                    yield from self._result(worker, message[1], message[2])

    def _warn(self, text: str) -> None:
        """Re-emit a worker's warning in the parent, once per run."""
        relay_warnings([text], self.warned, stacklevel=4)

    def _hand_out(self) -> Iterator[tuple[int, Any]]:
        """Give every worker up to IN_FLIGHT chunks: images to run again first, then new ones."""
        unsent = []
        for worker in self.pool.workers:
            while len(worker.chunks) < IN_FLIGHT:
                chunk = self.recovery.next_chunk(worker.chunks, self._fresh)
                if chunk is None:
                    break
                unsent += self.pool.give(worker, chunk)
        for index, message in unsent:
            yield self._finish(index, ImageError(index, message))

    def _fresh(self) -> Chunk | None:
        """The next chunk of images not yet sent, or None."""
        chunk, self.todo = self.todo[:CHUNK], self.todo[CHUNK:]
        return chunk or None

    def _result(self, worker: _Worker, index: int, packed: Any) -> Iterator[tuple[int, Any]]:
        worker.returned(index)
        if index in self.done:  # never expected: a dead worker's pipe is read to its end first
            return
        yield self._finish(index, unpack(index, packed))

    def _died(self, worker: _Worker) -> Iterator[tuple[int, Any]]:
        code = worker.process.exitcode
        running, queued, alone = worker.lost()
        self.pool.replace(worker)
        lost = self.recovery.died(running, queued, len(self.pool.workers), alone)
        for index, _ in lost.given_up:
            error = self.recovery.given_up(index, f"worker process on {worker.device}", f"exit code {code}")
            yield self._finish(index, error)

    def _finish(self, index: int, result: Any) -> tuple[int, Any]:
        self.done.add(index)
        self.remaining -= 1
        if isinstance(result, ImageError):
            return failed(result, self.on_error)
        return index, result


def iter_explain_workers(images: Iterable[Any], classifier: Any, segments: Any, *, devices: Any,
                         segmenter: Callable | None, on_error: str, options: ExplainOptions,
                         window: int | None = None) -> Iterator[tuple[int, Any]]:
    """Spread ``images`` over one worker process per device; see :func:`sedc.scale.iter_explain`.

    Raises
    ------
    TypeError
        When the classifier or segmenter cannot be pickled for the workers.
    RuntimeError
        When a worker cannot build the model.
    """
    devices = parse_devices(devices)
    warn_training_mode(classifier, stacklevel=3)  # each worker evaluates its own copy in eval mode
    try:
        payload = pickle.dumps((classifier, segmenter, options, window), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # noqa: BLE001
        raise InputTypeError(f"worker processes need a picklable classifier and segmenter (module-level "
                        f"classes or functions, functools.partial): {type(err).__name__}: {err}") from err
    todo = list(enumerate(as_tasks(images, segments)))
    pool = _Pool(payload, devices, mp.get_context(START_METHOD))
    try:
        yield from _Dispatch(pool, todo, on_error).run()
    finally:
        pool.close()
