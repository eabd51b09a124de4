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
    """Inverse of :func:`pack`."""
    from .many import ImageError

    kind, payload = packed
    if kind == "explanation":
        payload = dict(payload)
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


def _worker_main(worker: int, classifier: Any, device: str, threads: int, segmenter: Callable | None,
                 options: dict, tasks: Any, results: Any) -> None:
    """Worker process: build the model, then explain chunks until told to stop (None)."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    try:
        model = build_model(classifier, dev)
    except Exception as err:  # noqa: BLE001
        results.put(("fatal", worker, f"{type(err).__name__}: {err}"))
        return
    while True:
        chunk = tasks.get()
        if chunk is None:
            return
        for index, packed in run_chunk(model, dev, chunk, segmenter, options):
            results.put(("result", worker, index, packed))


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
        self.ctx, self.classifier, self.segmenter, self.options = ctx, classifier, segmenter, options
        self.devices = devices
        self.threads = _threads_per_worker(devices)
        self.results = ctx.Queue()
        self.procs: dict[int, Any] = {}
        self.tasks: dict[int, Any] = {}
        self.assigned: dict[int, dict[int, tuple]] = {}
        self._next_id = 0
        for device in devices:
            self.spawn(device)

    def spawn(self, device: str) -> int:
        worker = self._next_id
        self._next_id += 1
        tasks = self.ctx.Queue()
        proc = self.ctx.Process(target=_worker_main, daemon=True, name=f"sedc-worker-{worker}-{device}",
                                args=(worker, self.classifier, device, self.threads, self.segmenter,
                                      self.options, tasks, self.results))
        proc.start()
        self.procs[worker], self.tasks[worker], self.assigned[worker] = proc, tasks, {}
        proc.device = device
        return worker

    def idle_workers(self) -> list[int]:
        return [w for w in self.procs if len(self.assigned[w]) <= CHUNK]

    def give(self, worker: int, chunk: list[tuple]) -> None:
        for triple in chunk:
            self.assigned[worker][triple[0]] = triple
        self.tasks[worker].put(chunk)

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
    pool = _Pool(classifier, devices, segmenter, options, mp.get_context("spawn"))
    remaining = len(todo)
    try:
        while remaining:
            for worker in pool.idle_workers():
                if todo:
                    chunk, todo = todo[:CHUNK], todo[CHUNK:]
                    pool.give(worker, chunk)
            try:
                message = pool.results.get(timeout=1.0)
            except queue.Empty:
                for index, result in _recover(pool, todo, tries, on_error):
                    remaining -= 1
                    yield index, result
                continue
            if message[0] == "fatal":
                raise RuntimeError(f"worker on {pool.procs[message[1]].device} could not start: {message[2]}")
            _, worker, index, packed = message
            pool.assigned[worker].pop(index, None)
            result = unpack(index, packed)
            if isinstance(result, ImageError) and on_error == "raise":
                raise RuntimeError(f"image {index}: {result.message}")
            remaining -= 1
            yield index, result
    finally:
        pool.close()


def _recover(pool: _Pool, todo: list, tries: dict, on_error: str) -> Iterator[tuple[int, Any]]:
    """Replace dead workers; retry their images once, then report them."""
    from .many import ImageError

    for worker, proc in list(pool.procs.items()):
        if proc.is_alive():
            continue
        lost = pool.assigned.pop(worker)
        del pool.procs[worker], pool.tasks[worker]
        pool.spawn(proc.device)
        for index, triple in lost.items():
            if tries[index] < RETRIES:
                tries[index] += 1
                todo.insert(0, triple)
                continue
            message = f"worker process on {proc.device} died (exit code {proc.exitcode}) twice on this image"
            if on_error == "raise":
                raise RuntimeError(f"image {index}: {message}")
            yield index, ImageError(index, message, kind="worker-died")
