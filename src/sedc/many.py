"""Explaining many images: :func:`explain_many` and :func:`iter_explain`.

Several searches run at once and their candidates share model batches (cross-image batching),
which keeps a GPU busy where one image's search offers only a few dozen candidates per step.
Upcoming images are loaded, segmented and filled by a thread pool while the model works.
Each result is what :func:`sedc.explain` returns for that image alone: the searches are
independent state machines and only the batching is shared.

With ``devices=[...]`` the images are spread over one worker process per device
(:mod:`sedc.workers`); results stream back as they finish.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

from .engine import (
    Job,
    _evaluate,
    classifier_device,
    evaluate_originals,
    finish,
    make_job,
    take_batch,
    use_channels_last,
)
from .evaluation import Evaluator, check_batch_size
from .explanation import Explanation

ON_ERROR = ("raise", "return")


class ImageError(Exception):
    """An image that could not be explained (load, segmentation, or model failure).

    Attributes
    ----------
    index : int
        Position of the image in the input.
    message : str
        What went wrong.
    kind : str
        ``"error"``, or ``"worker-died"`` when a worker process died holding the image.
    error : BaseException or None
        The original exception, when raised in this process.
    """

    def __init__(self, index: int, message: str, kind: str = "error", error: BaseException | None = None) -> None:
        super().__init__(index, message, kind)
        self.index, self.message, self.kind, self.error = index, message, kind, error

    def __str__(self) -> str:
        return self.message


def iter_explain(
    images: Iterable[Any],
    classifier: Any,
    segments: Any = None,
    *,
    segmenter: Callable[[Any], Any] | None = None,
    on_error: str = "raise",
    window: int | None = None,
    prefetch_workers: int | None = None,
    devices: Sequence[Any] | None = None,
    ray_address: str | None = None,
    mode: Any = "blur",
    target: int | None = None,
    device: Any = None,
    batch_size: int | str = "auto",
    max_time: float | None = None,
    max_evals: int | None = None,
    seed: int = 0,
    prune: bool = False,
    autocast: bool = False,
    channels_last: bool | str = "auto",
    max_batch: int | None = None,
) -> Iterator[tuple[int, Explanation | ImageError]]:
    """Explain many images, yielding ``(index, Explanation)`` in the order they finish.

    Parameters
    ----------
    images : iterable
        Images (anything :func:`sedc.explain` accepts) or zero-argument callables returning one
        (loaders: a loader's error is reported for that image only).
    classifier : torch.nn.Module or callable
        As for :func:`sedc.explain`. With ``devices``, a picklable ``nn.Module`` or a picklable
        zero-argument factory returning one (each worker builds its own copy).
    segments : array, or sequence of arrays, optional
        One label map for all images, one per image, or None (``segmenter`` or quickshift).
    segmenter : callable, optional
        ``segmenter(image) -> labels`` for images without given segments.
    on_error : {"raise", "return"}
        ``"return"`` yields ``(index, ImageError)`` for a failed image and goes on.
    window : int, optional
        Searches run at once (default: 32 on CUDA; 1 on CPU, where bigger batches do not run
        faster per image, so sharing them gains nothing).
    prefetch_workers : int, optional
        Threads that load, segment and fill upcoming images while the model runs (default: 2 on
        CUDA; 0 on CPU, where the model already uses every core and competing threads slow it
        down).
    devices : sequence, optional
        One worker process per device (for example ``["cuda:0", "cuda:1"]``).
    ray_address : str, optional
        Run on Ray instead (:func:`sedc.ray.iter_explain_ray`): ``"local"`` starts a local Ray,
        ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
    max_batch : int, optional
        Memory cap: never put more than this many candidates in one model call.
    mode, target, device, batch_size, max_time, max_evals, seed, prune, autocast, channels_last :
        As for :func:`sedc.explain`, applied to every image (limits are per image).

    Yields
    ------
    (int, Explanation or ImageError)
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
    options = dict(mode=mode, target=target, batch_size=check_batch_size(batch_size), max_time=max_time,
                   max_evals=max_evals, seed=seed, prune=prune, autocast=autocast,
                   channels_last=channels_last, max_batch=max_batch)
    if ray_address is not None:
        if devices is not None:
            raise ValueError("pass either devices (worker processes) or ray_address (Ray), not both")
        from .ray import iter_explain_ray

        yield from iter_explain_ray(images, classifier, segments, address=ray_address, segmenter=segmenter,
                                    on_error=on_error, window=window, **options)
        return
    if devices is not None:
        from .workers import iter_explain_workers

        yield from iter_explain_workers(images, classifier, segments, devices=devices, segmenter=segmenter,
                                        on_error=on_error, window=window, **options)
        return
    runner = _Runner(classifier, device, window=window, prefetch_workers=prefetch_workers, **options)
    yield from runner.run(images, segments, segmenter, on_error)


def explain_many(images: Iterable[Any], classifier: Any, segments: Any = None, **options: Any
                 ) -> list[Explanation | ImageError]:
    """Explain every image (see :func:`iter_explain`); results in input order."""
    results = dict(iter_explain(images, classifier, segments, **options))
    return [results[i] for i in range(len(results))]


class _Inline:
    """An executor that runs each task at once, in the calling thread (no prefetching)."""

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @staticmethod
    def submit(fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001 - delivered through the future, like a thread pool
            future.set_exception(err)
        return future


def _executor(workers: int) -> Any:
    """A thread pool of ``workers`` threads, or inline execution for 0."""
    if workers == 0:
        return _Inline()
    return ThreadPoolExecutor(workers, thread_name_prefix="sedc-prepare")


class _Runner:
    """One process, one device: a window of concurrent searches sharing model batches."""

    def __init__(self, classifier: Any, device: Any, *, window: int | None, prefetch_workers: int,
                 mode: Any, target: Any, batch_size: Any, max_time: Any, max_evals: Any, seed: int,
                 prune: bool, autocast: bool, channels_last: Any, max_batch: int | None) -> None:
        self.device = classifier_device(classifier, device)
        self.evaluator = Evaluator(classifier, self.device, batch_size, autocast=autocast, max_batch=max_batch)
        cuda = self.device.type == "cuda"
        self.window = window or (32 if cuda else 1)
        if prefetch_workers is None:
            prefetch_workers = 2 if cuda else 0
        self.prefetch_workers = max(0, int(prefetch_workers))
        self.job_options = dict(mode=mode, target=target, device=self.device, max_time=max_time,
                                max_evals=max_evals, seed=seed, prune=prune,
                                channels_last=use_channels_last(channels_last, classifier, self.device))

    def _prepare(self, index: int, item: Any, segments: Any, segmenter: Callable | None) -> Job:
        image = item() if callable(item) else item
        seg = segments[index] if isinstance(segments, (list, tuple)) else segments
        if seg is None and segmenter is not None:
            seg = segmenter(image)
        return make_job(image, seg, **self.job_options)

    def run(self, images: Iterable[Any], segments: Any, segmenter: Callable | None, on_error: str
            ) -> Iterator[tuple[int, Explanation | ImageError]]:
        source = enumerate(images)
        pending: deque[tuple[int, Future]] = deque()
        active: list[tuple[int, Job]] = []
        with _executor(self.prefetch_workers) as pool:
            exhausted = False
            while True:
                while not exhausted and len(pending) < self.window + self.prefetch_workers:
                    nxt = next(source, None)
                    if nxt is None:
                        exhausted = True
                        break
                    pending.append((nxt[0], pool.submit(self._prepare, nxt[0], nxt[1], segments, segmenter)))
                started = []
                while pending and len(active) + len(started) < self.window:
                    index, future = pending.popleft()
                    try:
                        started.append((index, future.result()))
                    except Exception as err:  # noqa: BLE001 - reported per image
                        yield self._failed(index, err, on_error)
                yield from self._start(started, on_error)
                active.extend(started)
                if not active and not pending and exhausted:
                    return
                yield from self._round(active, on_error)
                finished = [(i, j) for i, j in active if j.done]
                active = [(i, j) for i, j in active if not j.done]
                for index, job in finished:
                    yield index, finish(job)

    def _start(self, started: list[tuple[int, Job]], on_error: str) -> Iterator[tuple[int, ImageError]]:
        """Evaluate the unperturbed images of newly started jobs; drop those that fail."""
        for pair in list(started):
            try:
                evaluate_originals([pair[1]], self.evaluator)
            except Exception as err:  # noqa: BLE001
                started.remove(pair)
                yield self._failed(pair[0], err, on_error)

    def _round(self, active: list[tuple[int, Job]], on_error: str) -> Iterator[tuple[int, ImageError]]:
        """One shared model batch over the active jobs (failing jobs are isolated and dropped)."""
        batch = [(*active[k], sets) for k, sets in take_batch([job for _, job in active], self.evaluator)]
        if not batch:
            return
        try:
            _evaluate([(job, sets) for _, job, sets in batch], self.evaluator)
            return
        except Exception as err:  # noqa: BLE001
            if len(batch) == 1:
                index, job, _ = batch[0]
                active.remove((index, job))
                yield self._failed(index, err, on_error)
                return
        for index, job, sets in batch:  # isolate the failing image(s)
            try:
                _evaluate([(job, sets)], self.evaluator)
            except Exception as err:  # noqa: BLE001
                active.remove((index, job))
                yield self._failed(index, err, on_error)

    @staticmethod
    def _failed(index: int, err: BaseException, on_error: str) -> tuple[int, ImageError]:
        if on_error == "raise":
            raise err
        return index, ImageError(index, f"{type(err).__name__}: {err}", error=err)
