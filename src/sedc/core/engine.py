"""``sedc.explain``: the fast SEDC / SEDC-T engine for one image.

The pieces: :mod:`~sedc.core.perturbation` builds the fill and composes candidate batches on the
device, :mod:`~sedc.core.search` decides which segment sets to evaluate (the algorithm is stated
in ``docs/algorithm.md``), :mod:`~sedc.core.evaluation` runs the model. :class:`Job` ties them
together for one image so that a driver (:func:`run_jobs` here, :mod:`sedc.scale.runner` for many
images) can evaluate the candidates of one or many searches in shared batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..base.errors import InputError
from ..base.options import ExplainOptions, mode_name, search_name
from ..base.validate import as_image_tensor, as_segments
from .evaluation import Evaluator
from .perturbation import Composer, make_fill, segment_index
from .result import Explanation
from .search import Pruner, Scores
from .strategies import Strategy, make_search


@dataclass
class Prepared:
    """An image made ready for the search: tensors on the device, its segmentation (the label map)
    and the segment ids in it (ascending: segment position j is ``segment_ids[j]``), fill, composer."""

    image: torch.Tensor
    segmentation: np.ndarray
    segment_ids: np.ndarray
    composer: Composer
    mode: str


@dataclass
class Job:
    """One image's search (and optional pruning) under its options, with its bookkeeping.

    ``options`` are the validated settings of this image (the run's, with a task's own put over
    them); nothing below re-checks them. ``target`` starts as ``options.target`` and becomes None
    when ``untargeted_if_predicted`` and the model already predicts the target. ``search`` is the
    strategy ``options.search`` names (:func:`~sedc.core.strategies.make_search`).

    ``n_model_calls`` counts the model batches this job was fed from, the unperturbed image's
    included: a batch shared with other jobs counts once for each of them, a step split over
    several batches counts each (a batch retried in parts after running out of memory, once).
    ``batch_size`` is the evaluator's batch size after the job's last batch (see
    :attr:`sedc.Explanation.batch_size`).
    """

    prepared: Prepared
    options: ExplainOptions
    untargeted_if_predicted: bool = False  # a target the model already predicts: plain SEDC
    target: int | None = None
    started: float = field(default_factory=time.perf_counter)
    search: Strategy | None = None
    pruner: Pruner | None = None
    original_class: int = -1
    original_score: float = float("nan")
    n_evaluations: int = 0
    n_model_calls: int = 0
    batch_size: int = 0
    finished: float | None = None

    def __post_init__(self) -> None:
        self.target = self.options.target

    @property
    def phase(self) -> Strategy | Pruner | None:
        """The state machine that currently proposes candidates."""
        if self.search is None:
            return None
        if not self.search.done:
            return self.search
        if self.pruner is not None and not self.pruner.done:
            return self.pruner
        return None

    @property
    def done(self) -> bool:
        return self.search is not None and self.phase is None

    def available(self) -> int:
        """Candidates the active phase can hand out now (before limits are applied)."""
        phase = self.phase
        return 0 if phase is None else phase.available()

    def start(self, scores: Scores) -> None:
        """Start the search from the scores of the unperturbed image (one row); starts the clock."""
        self.started = time.perf_counter()
        self.n_evaluations = 1
        self.n_model_calls = 1
        self.original_class = int(scores.predicted[0])
        self.original_score = float(scores.top[0])
        if self.target is not None and self.target == self.original_class and self.untargeted_if_predicted:
            self.target = None  # e.g. "toward the true class" for a correctly classified image
        if self.target is not None and self.target == self.original_class:
            raise InputError(f"target class {self.target} is already the predicted class of the image; "
                             "choose another target or use target=None")
        self.search = make_search(self.options.search, len(self.prepared.segment_ids), self.original_class,
                                  self.original_score, self.target, width=self.options.beam_width)
        if len(self.prepared.segment_ids) < 2:
            # Removing the only segment removes the whole image: that explains nothing.
            self.search.done, self.search.stop_reason = True, "exhausted"
        self._after_feed()

    def budget(self) -> int | None:
        """Evaluations left under ``max_evals`` (None: unlimited)."""
        max_evals = self.options.max_evals
        return None if max_evals is None else max_evals - self.n_evaluations

    def check_limits(self) -> None:
        """Stop the active phase when a limit is reached."""
        phase = self.phase
        if phase is None:
            return
        max_time = self.options.max_time
        if max_time is not None and time.perf_counter() - self.started >= max_time:
            phase.stop("max_time")
        elif self.budget() is not None and self.budget() <= 0:
            phase.stop("max_evals")
        self._after_feed()

    def take(self, n: int) -> list[int]:
        """Up to ``n`` candidates of the active phase, respecting ``max_evals``."""
        self.check_limits()
        phase = self.phase
        if phase is None:
            return []
        budget = self.budget()
        return phase.take(n if budget is None else min(n, budget))

    def feed(self, sets: list[int], scores: Scores) -> None:
        """Hand scores back to the phase that proposed ``sets``."""
        phase = self.phase
        phase.feed(sets, scores)
        self.n_evaluations += len(sets)
        self.n_model_calls += 1
        self._after_feed()

    def _after_feed(self) -> None:
        search = self.search
        if search.done and search.best is not None and self.options.prune and self.pruner is None:
            self.pruner = Pruner(search)
        if self.done and self.finished is None:
            self.finished = time.perf_counter()

    def original_tensor(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row original and target class indices for ``n`` candidates."""
        original = torch.full((n,), self.original_class, dtype=torch.long, device=device)
        target = self.original_class if self.target is None else self.target
        return original, torch.full((n,), target, dtype=torch.long, device=device)


def prepare(image: Any, segmentation: Any, mode: Any, device: torch.device, seed: int,
            channels_last: bool = False) -> Prepared:
    """Validate and move one image to ``device``; segment it if needed; compute its fill.

    ``mode`` and ``seed`` are trusted (checked by :class:`~sedc.ExplainOptions`); the image and
    the segmentation are user input and are checked here.
    """
    tensor = as_image_tensor(image).to(device)
    height, width = tensor.shape[2:]
    if segmentation is None:
        from ..imaging.segmentation import segment

        segmentation = segment(tensor, "quickshift")
    segmentation = as_segments(segmentation, height, width)
    segment_ids, index = segment_index(segmentation, device)
    fill = make_fill(tensor, torch.from_numpy(segmentation).to(device), mode, seed=seed)
    composer = Composer(tensor, fill, index, len(segment_ids), channels_last=channels_last)
    return Prepared(tensor, segmentation, segment_ids, composer, mode_name(mode))


def take_batch(jobs: Sequence[Job], evaluator: Evaluator) -> list[tuple[int, list[int]]]:
    """Fill one model batch: ``(position in jobs, candidate sets)`` taken from the jobs in order.

    The batch size comes from the evaluator's sizer, balanced over all available candidates.
    """
    batch: list[tuple[int, list[int]]] = []
    room = evaluator.sizer.chunk(sum(job.available() for job in jobs))
    for position, job in enumerate(jobs):
        if room <= 0:
            break
        sets = job.take(room)
        if sets:
            batch.append((position, sets))
            room -= len(sets)
    return batch


def run_jobs(jobs: Sequence[Job], evaluator: Evaluator) -> None:
    """Drive ``jobs`` (already started) to completion, packing candidates into shared batches.

    Candidates are taken from the jobs in order until a batch is full, so a single job's search
    sees exactly the batches it would see alone, only bigger.
    """
    active = [job for job in jobs if not job.done]
    while active:
        batch = take_batch(active, evaluator)
        if batch:
            evaluate_batch([(active[k], sets) for k, sets in batch], evaluator)
        active = [job for job in active if not job.done]


def evaluate_batch(batch: list[tuple[Job, list[int]]], evaluator: Evaluator) -> None:
    """Evaluate ``(job, candidate sets)`` pairs in one model call and feed each job its scores."""
    device = evaluator.device
    originals, targets = [], []
    for job, sets in batch:
        o, t = job.original_tensor(len(sets), device)
        originals.append(o)
        targets.append(t)
    if len(batch) == 1:
        job, sets = batch[0]
        scores = evaluator.score_sets(job.prepared.composer.compose, sets, originals[0], targets[0])
        job.feed(sets, scores)
        job.batch_size = evaluator.sizer.size
        return
    flat = [(k, s) for k, (_, sets) in enumerate(batch) for s in sets]

    def compose(items: list[tuple[int, int]]) -> torch.Tensor:
        parts, start = [], 0
        while start < len(items):
            k = items[start][0]
            stop = start
            while stop < len(items) and items[stop][0] == k:
                stop += 1
            parts.append(batch[k][0].prepared.composer.compose([s for _, s in items[start:stop]]))
            start = stop
        return torch.cat(parts)

    scores = evaluator.score_sets(compose, flat, torch.cat(originals), torch.cat(targets))
    start = 0
    for job, sets in batch:
        job.feed(sets, scores.slice(start, start + len(sets)))
        job.batch_size = evaluator.sizer.size
        start += len(sets)


def evaluate_originals(jobs: Sequence[Job], evaluator: Evaluator) -> None:
    """Evaluate the unperturbed image of each job, validate its target, and start its search."""
    for job in jobs:
        row = evaluator.forward(job.prepared.image)[0].float().cpu()
        if job.target is not None and not job.target < row.shape[0]:
            raise InputError(f"target must be a class index in 0..{row.shape[0] - 1}; got {job.target}")
        predicted = int(row.argmax())
        target = predicted if job.target is None else job.target
        job.batch_size = evaluator.sizer.size
        job.start(Scores(np.array([predicted]), np.array([float(row[predicted])]),
                         np.array([float(row[predicted])]), np.array([float(row[target])])))


def finish(job: Job) -> Explanation:
    """Build the :class:`Explanation` of a finished job (no model call: the scores are kept)."""
    prepared, search = job.prepared, job.search
    best = job.pruner.best if job.pruner is not None else search.best
    image_cpu = prepared.image.detach().cpu()
    index = prepared.composer.index.cpu().numpy()
    if best is None:
        mask = np.zeros(prepared.segmentation.shape, dtype=bool)
        perturbed = image_cpu.clone()
        new_class, new_score, class_score = job.original_class, job.original_score, job.original_score
        removed: list[int] = []
    else:
        members = prepared.composer.members([best.bits])[0]
        mask = members[index]
        removed = [int(x) for x in prepared.segment_ids[members]]
        perturbed = prepared.composer.compose([best.bits]).float().contiguous().cpu()
        new_class, new_score, class_score = best.predicted, best.top, best.original
    explanation_image = image_cpu[0].permute(1, 2, 0).numpy() * mask[:, :, None]
    return Explanation(
        removed=removed, found=best is not None, original_class=job.original_class,
        original_score=job.original_score, new_class=int(new_class), new_score=float(new_score),
        original_class_score=float(class_score), target=job.target, mode=prepared.mode,
        n_evaluations=job.n_evaluations, elapsed=(job.finished or time.perf_counter()) - job.started,
        stop_reason=search.stop_reason or "exhausted", n_segments=len(prepared.segment_ids), mask=mask,
        perturbed_image=perturbed, explanation_image=explanation_image.astype(np.float32),
        image=image_cpu, segmentation=prepared.segmentation,
        search=search_name(job.options.search, job.options.beam_width), n_model_calls=job.n_model_calls,
        batch_size=job.batch_size,
    )


def make_evaluator(classifier: Any, device: torch.device, options: ExplainOptions,
                   channels_last: bool = False) -> Evaluator:
    """The :class:`Evaluator` that runs ``classifier`` on ``device`` as ``options`` say.

    ``channels_last`` says whether the batches will be composed in channels-last memory format
    (:func:`use_channels_last`); it is part of where a remembered batch size applies.
    """
    return Evaluator(classifier, device, options.batch_size, autocast=options.autocast,
                     max_batch=options.max_batch, channels_last=channels_last)


def make_job(image: Any, segmentation: Any, options: ExplainOptions, device: torch.device,
             channels_last: bool, *, untargeted_if_predicted: bool = False) -> Job:
    """Prepare one image's :class:`Job` under validated ``options`` (no model calls).

    With ``untargeted_if_predicted``, an image the model already assigns to ``options.target`` is
    explained with plain SEDC (its result's ``target`` is None) instead of failing.
    """
    prepared = prepare(image, segmentation, options.mode, device, options.seed, channels_last=channels_last)
    return Job(prepared, options, untargeted_if_predicted)


def use_channels_last(options: ExplainOptions, classifier: Any, device: torch.device) -> bool:
    """Resolve ``channels_last="auto"``: on for modules with 2-D convolutions."""
    if options.channels_last == "auto":
        return isinstance(classifier, torch.nn.Module) and any(
            isinstance(m, torch.nn.Conv2d) for m in classifier.modules())
    return bool(options.channels_last)
