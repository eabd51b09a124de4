"""Worker processes: one per device, each with its own model copy (``devices=[...]``).

Images are handed out in small chunks (a chunk is explained with cross-image batching inside
the worker) and results stream back one image at a time. A worker that dies loses only the
images it was holding: they are retried once on another worker, then reported as failed.
:func:`run_chunk` is the unit of work shared with the Ray backend (:mod:`sedc.ray`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import pickle
import queue
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ._inputs import resolve_device
from .explanation import Explanation

CHUNK = 4
RETRIES = 1


def build_model(classifier: Any, device: torch.device) -> Any:
    """The worker's own model: a module moved to ``device``, or a factory's module."""
    if isinstance(classifier, torch.nn.Module):
        return classifier.to(device).eval()
    if callable(classifier):
        model = classifier()
        if isinstance(model, torch.nn.Module):
            return model.to(device).eval()
        return model
    raise TypeError(f"classifier for worker processes must be an nn.Module or a picklable factory; "
                    f"got {type(classifier).__name__}")


def pack(result: Any) -> Any:
    """Make a result safe to send between processes (tensors become numpy arrays)."""
    if isinstance(result, Explanation):
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        for name in ("perturbed_image", "image"):
            fields[name] = fields[name].numpy()
        return ("explanation", fields)
    return ("error", str(result))


def unpack(index: int, packed: Any) -> Any:
    """Inverse of :func:`pack`.

    Arrays that arrive read-only (Ray hands out zero-copy views of its object store) are copied,
    so results can be modified like those of :func:`sedc.explain`.
    """
    from .many import ImageError

    kind, payload = packed
    if kind == "explanation":
        payload = {name: np.array(value) if isinstance(value, np.ndarray) and not value.flags.writeable
                   else value for name, value in payload.items()}
        for name in ("perturbed_image", "image"):
            payload[name] = torch.from_numpy(np.asarray(payload[name]))
        return Explanation(**payload)
    return ImageError(index, payload)


def run_chunk(model: Any, device: Any, chunk: Sequence[tuple[int, Any, Any]], segmenter: Callable | None,
              options: dict) -> Iterator[tuple[int, Any]]:
    """Explain ``chunk`` (``(index, image_or_loader, segments)`` triples) on one device.

    Yields ``(index, packed result)`` as images finish (see :func:`pack`).
    """
    from .many import iter_explain

    items = [item for _, item, _ in chunk]
    segs = [seg for _, _, seg in chunk]
    for position, result in iter_explain(items, model, segs, segmenter=segmenter, on_error="return",
                                         device=device, **options):
        yield chunk[position][0], pack(result)


def _worker_main(worker: int, payload: bytes, device: str, threads: int, tasks: Any, results: Any) -> None:
    """Worker process: build the model, then explain chunks until told to stop (None).

    The classifier, segmenter and options arrive pickled (``payload``) and each chunk as
    ``(indices, pickled chunk)``, so that what cannot be unpickled here is reported, not fatal.
    """
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    try:
        classifier, segmenter, options = pickle.loads(payload)
        model = build_model(classifier, dev)
    except Exception as err:  # noqa: BLE001
        results.put(("fatal", worker, f"{type(err).__name__}: {err}"))
        return
    while True:
        task = tasks.get()
        if task is None:
            return
        indices, blob = task
        try:
            chunk = pickle.loads(blob)
        except Exception as err:  # noqa: BLE001 - e.g. a loader whose module is not importable here
            for index in indices:
                results.put(("result", worker, index, ("error", f"cannot load the image in the worker "
                                                                f"process: {type(err).__name__}: {err}")))
            continue
        for index, packed in run_chunk(model, dev, chunk, segmenter, options):
            results.put(("result", worker, index, packed))


def _dump(chunk: list[tuple]) -> tuple[bytes | None, list[tuple], list[tuple[int, str]]]:
    """Pickle ``chunk`` for a worker: (bytes, sendable triples, (index, error) of unpicklable ones)."""
    try:
        return pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL), chunk, []
    except Exception:  # noqa: BLE001 - find the culprits
        pass
    good, bad = [], []
    for triple in chunk:
        try:
            pickle.dumps(triple, protocol=pickle.HIGHEST_PROTOCOL)
            good.append(triple)
        except Exception as err:  # noqa: BLE001
            bad.append((triple[0], f"cannot send the image to a worker process ({type(err).__name__}: {err}); "
                                   "use module-level loader functions or functools.partial"))
    return (pickle.dumps(good, protocol=pickle.HIGHEST_PROTOCOL) if good else None), good, bad


def _threads_per_worker(devices: Sequence[str]) -> int:
    n_cpu_workers = sum(1 for d in devices if d.startswith("cpu"))
    if not n_cpu_workers:
        return 0
    return max(1, (os.cpu_count() or 1) // n_cpu_workers)


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
        raise ValueError("devices must name at least one device, e.g. 'all', 'cuda:0,cuda:1' or 'cpu,cpu'")
    return out


class _Pool:
    """Book-keeping of the worker processes, their assigned chunks and retries."""

    def __init__(self, classifier, devices, segmenter, options, ctx) -> None:
        self.ctx = ctx
        try:
            self.payload = pickle.dumps((classifier, segmenter, options), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001
            raise TypeError(f"worker processes need a picklable classifier and segmenter (module-level "
                            f"classes or functions, functools.partial): {type(err).__name__}: {err}") from err
        self.devices = devices
        self.threads = _threads_per_worker(devices)
        self.results = ctx.Queue()
        self.procs: dict[int, Any] = {}
        self.tasks: dict[int, Any] = {}
        self.assigned: dict[int, dict[int, tuple]] = {}
        self.exclusive: set[int] = set()  # workers retrying one image alone
        self._next_id = 0
        for device in devices:
            self.spawn(device)

    def spawn(self, device: str) -> int:
        worker = self._next_id
        self._next_id += 1
        tasks = self.ctx.Queue()
        proc = self.ctx.Process(target=_worker_main, daemon=True, name=f"sedc-worker-{worker}-{device}",
                                args=(worker, self.payload, device, self.threads, tasks, self.results))
        proc.start()
        self.procs[worker], self.tasks[worker], self.assigned[worker] = proc, tasks, {}
        proc.device = device
        return worker

    def idle_workers(self) -> list[int]:
        return [w for w in self.procs if w not in self.exclusive and len(self.assigned[w]) <= CHUNK]

    def give(self, worker: int, chunk: list[tuple]) -> list[tuple[int, str]]:
        """Send ``chunk`` to ``worker``; returns ``(index, error)`` of images that cannot be sent."""
        blob, good, bad = _dump(chunk)
        for triple in good:
            self.assigned[worker][triple[0]] = triple
        if blob is not None:
            self.tasks[worker].put(([t[0] for t in good], blob))
        return bad

    def close(self) -> None:
        for worker, proc in self.procs.items():
            if proc.is_alive():
                try:
                    self.tasks[worker].put(None)
                except (OSError, ValueError):
                    pass
        for proc in self.procs.values():
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


def iter_explain_workers(images: Iterable[Any], classifier: Any, segments: Any, *, devices: Any,
                         segmenter: Callable | None, on_error: str, window: int | None,
                         **options: Any) -> Iterator[tuple[int, Any]]:
    """Spread ``images`` over one worker process per device; see :func:`sedc.many.iter_explain`."""
    from .many import ImageError

    devices = parse_devices(devices)
    options = dict(options, window=window)
    todo = [(i, item, segments[i] if isinstance(segments, (list, tuple)) else segments)
            for i, item in enumerate(images)]
    tries = {i: 0 for i, _, _ in todo}
    retry: list[list[tuple]] = []  # images of dead workers, retried one at a time
    done: set[int] = set()
    pool = _Pool(classifier, devices, segmenter, options, mp.get_context("spawn"))
    remaining = len(todo)
    try:
        while remaining:
            unsent = []
            for worker in pool.idle_workers():
                if retry:
                    if not pool.assigned[worker]:  # alone: a killer image takes no other down
                        unsent += pool.give(worker, retry.pop(0))
                        pool.exclusive.add(worker)
                elif todo:
                    chunk, todo = todo[:CHUNK], todo[CHUNK:]
                    unsent += pool.give(worker, chunk)
            for index, message in unsent:
                if on_error == "raise":
                    raise TypeError(f"image {index}: {message}")
                done.add(index)
                remaining -= 1
                yield index, ImageError(index, message)
            if not remaining:
                break
            try:
                message = pool.results.get(timeout=1.0)
            except queue.Empty:
                for index, result in _recover(pool, retry, tries, done, on_error):
                    done.add(index)
                    remaining -= 1
                    yield index, result
                continue
            if message[0] == "fatal":
                raise RuntimeError(f"worker on {pool.procs[message[1]].device} could not start: {message[2]}")
            _, worker, index, packed = message
            held = pool.assigned.get(worker, {})
            held.pop(index, None)
            if not held:
                pool.exclusive.discard(worker)
            if index in done:  # a late result of a dead worker whose image was retried
                continue
            done.add(index)
            retry[:] = [chunk for chunk in retry if chunk[0][0] != index]
            result = unpack(index, packed)
            if isinstance(result, ImageError) and on_error == "raise":
                raise RuntimeError(f"image {index}: {result.message}")
            remaining -= 1
            yield index, result
    finally:
        pool.close()


def _recover(pool: _Pool, retry: list, tries: dict, done: set, on_error: str) -> Iterator[tuple[int, Any]]:
    """Replace dead workers; retry their images once, then report them."""
    from .many import ImageError

    for worker, proc in list(pool.procs.items()):
        if proc.is_alive():
            continue
        lost = pool.assigned.pop(worker)
        pool.exclusive.discard(worker)
        del pool.procs[worker], pool.tasks[worker]
        pool.spawn(proc.device)
        for index, triple in lost.items():
            if index in done:
                continue
            if tries[index] < RETRIES:
                tries[index] += 1
                retry.append([triple])
                continue
            message = f"worker process on {proc.device} died (exit code {proc.exitcode}) twice on this image"
            if on_error == "raise":
                raise RuntimeError(f"image {index}: {message}")
            yield index, ImageError(index, message, kind="worker-died")
