"""One process, one device: a window of searches whose candidates share model batches.

Several searches run at once and their candidates are packed into shared model batches
(cross-image batching), which keeps a GPU busy where one image's search offers only a few dozen
candidates per step. Upcoming images are loaded, segmented and filled by a thread pool while the
model works. Each result is what :func:`sedc.explain` returns for that image alone: the searches
are independent state machines and only the batching is shared.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from ..base.errors import ImageError
from ..base.options import ExplainOptions
from ..base.outputs import eval_mode
from ..base.validate import classifier_device
from ..core.checks import Checker, attach, run_checks
from ..core.engine import (
    Job,
    evaluate_batch,
    evaluate_originals,
    finish,
    make_evaluator,
    make_job,
    take_batch,
    use_channels_last,
)
from ..core.result import Explanation
from .recovery import failed
from .task import Task

Result = tuple[int, "Explanation | ImageError"]


class Runner:
    """Explains images on one device, ``window`` searches at a time, in shared model batches.

    Parameters
    ----------
    classifier : torch.nn.Module or callable
        The model, already on ``device`` (or a callable).
    device : str, torch.device or None
        Where candidates are composed and the model runs; defaults to the model's device.
    options : ExplainOptions
        The search settings, applied to every image (a :class:`~sedc.scale.task.Task` input
        puts its own settings over them for that image).
    window : int, optional
        Searches run at once (default: 32 on CUDA; 1 on CPU, where bigger batches do not run
        faster per image, so sharing them gains nothing).
    prefetch_workers : int, optional
        Threads preparing upcoming images (default: 2 on CUDA; 0 on CPU, where the model already
        uses every core and competing threads slow it down).
    """

    def __init__(self, classifier: Any, device: Any, options: ExplainOptions, *,
                 window: int | None = None, prefetch_workers: int | None = None) -> None:
        self.classifier = classifier
        self.device = classifier_device(classifier, device)
        self.channels_last = use_channels_last(options, classifier, self.device)
        self.evaluator = make_evaluator(classifier, self.device, options, self.channels_last)
        cuda = self.device.type == "cuda"
        self.window = window or (32 if cuda else 1)
        self.prefetch_workers = max(0, int(2 if cuda else 0) if prefetch_workers is None else int(prefetch_workers))
        self.options = options
        self.checker = Checker(options, self.device)

    def run(self, tasks: Iterable[Task], segmenter: Callable | None = None,
            on_error: str = "raise") -> Iterator[Result]:
        """Yield ``(position in tasks, Explanation or ImageError)`` as searches finish.

        Each task holds an image or a zero-argument loader (see :func:`sedc.scale.task.as_tasks`);
        a failing image is handled by ``on_error`` (see :func:`sedc.scale.recovery.failed`) and
        never stops the others. A model in
        training mode is evaluated in eval mode until the run ends, then restored exactly (one
        ``UserWarning`` when that changes what it computes: :func:`sedc.base.outputs.warn_training_mode`).
        """
        with eval_mode(self.classifier, stacklevel=3):
            yield from self._run(tasks, segmenter, on_error)

    def _run(self, tasks: Iterable[Task], segmenter: Callable | None, on_error: str) -> Iterator[Result]:
        source = enumerate(tasks)
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
                    pending.append((nxt[0], pool.submit(self._prepare, nxt[1], segmenter)))
                started = []
                while pending and len(active) + len(started) < self.window:
                    index, future = pending.popleft()
                    try:
                        started.append((index, future.result()))
                    except Exception as err:  # noqa: BLE001 - reported per image
                        yield failed(ImageError.from_exception(index, err), on_error)
                yield from self._start(started, on_error)
                active.extend(started)
                if not active and not pending and exhausted:
                    return
                yield from self._round(active, on_error)
                yield from self._finish([(i, j) for i, j in active if j.done], on_error)
                active[:] = [(i, j) for i, j in active if not j.done]

    def _prepare(self, task: Task, segmenter: Callable | None) -> Job:
        image = task.image() if callable(task.image) else task.image
        segmentation = task.segmentation
        if segmentation is None and segmenter is not None:
            segmentation = segmenter(image)
        return make_job(image, segmentation, task.apply(self.options), self.device, self.channels_last,
                        untargeted_if_predicted=task.untargeted_if_predicted)

    def _start(self, started: list[tuple[int, Job]], on_error: str) -> Iterator[Result]:
        """Evaluate the unperturbed images of newly started jobs; drop those that fail."""
        for pair in list(started):
            try:
                evaluate_originals([pair[1]], self.evaluator)
            except Exception as err:  # noqa: BLE001
                started.remove(pair)
                yield failed(ImageError.from_exception(pair[0], err), on_error)

    def _round(self, active: list[tuple[int, Job]], on_error: str) -> Iterator[Result]:
        """One shared model batch over the active jobs (failing jobs are isolated and dropped)."""
        batch = [(*active[k], sets) for k, sets in take_batch([job for _, job in active], self.evaluator)]
        if not batch:
            return
        try:
            evaluate_batch([(job, sets) for _, job, sets in batch], self.evaluator)
            return
        except Exception as err:  # noqa: BLE001
            if len(batch) == 1:
                index, job, _ = batch[0]
                active.remove((index, job))
                yield failed(ImageError.from_exception(index, err), on_error)
                return
        for index, job, sets in batch:  # isolate the failing image(s)
            try:
                evaluate_batch([(job, sets)], self.evaluator)
            except Exception as err:  # noqa: BLE001
                active.remove((index, job))
                yield failed(ImageError.from_exception(index, err), on_error)

    def _finish(self, done: list[tuple[int, Job]], on_error: str) -> Iterator[Result]:
        """Check the jobs that finished this round in shared batches and yield their results (a job
        whose checks fail is retried alone, and fails alone)."""
        if not done:
            return
        try:
            checked = run_checks([job for _, job in done], self.evaluator, self.checker)
        except Exception as err:  # noqa: BLE001 - isolated below
            if len(done) == 1:
                yield failed(ImageError.from_exception(done[0][0], err), on_error)
                return
            checked = None
        for k, (index, job) in enumerate(done):
            try:
                result = checked[k] if checked is not None else run_checks([job], self.evaluator, self.checker)[0]
            except Exception as err:  # noqa: BLE001
                yield failed(ImageError.from_exception(index, err), on_error)
                continue
            yield index, attach(finish(job), result)


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

