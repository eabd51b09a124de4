"""Model evaluation: validated forward passes, batch sizes (:mod:`sedc.core.batching`) and
out-of-memory recovery."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from ..base.errors import InputError
from ..base.outputs import to_scores
from .batching import BatchSizer, SizeKey, recall_sizes, remember_sizes
from .search import Scores

Classifier = Callable[[torch.Tensor], Any]


def as_scores(output: Any, batch: int) -> torch.Tensor:
    """Validate a classifier's output for a batch of ``batch`` images: a (B, K) tensor."""
    output = to_scores(output)
    if output.ndim != 2:
        raise InputError(f"the classifier must return scores of shape (B, K); got shape "
                         f"{tuple(output.shape)} for a batch of {batch}")
    if output.shape[0] != batch:
        raise InputError(f"the classifier returned {output.shape[0]} rows of scores for a batch of "
                         f"{batch} images; it must return one row per image, shape (B, K)")
    if output.shape[1] < 2:
        raise InputError(f"the classifier returned {output.shape[1]} class score(s) per image; "
                         "SEDC needs at least 2 classes")
    return output


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a device out-of-memory error."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(err, oom):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class Evaluator:
    """Runs a classifier on candidate batches under ``torch.inference_mode``.

    Each call makes one host synchronisation: the per-candidate predicted class and the scores the
    search needs are gathered on the device and copied back together (:func:`pick_scores`).

    Parameters
    ----------
    classifier : callable
        Maps (B, C, H, W) tensors to (B, K) scores.
    device : torch.device
    batch_size : int or "auto"
    autocast : bool
        Run the model under ``torch.autocast`` (CUDA: float16).
    max_batch : int, optional
        Upper bound of the batch size.
    channels_last : bool
        Whether the batches come in channels-last memory format (part of where a size was measured).

    Notes
    -----
    With ``batch_size="auto"``, the first batch (the unperturbed image) looks up what ``"auto"``
    learned for this classifier object on the same device, image shape, memory format and
    autocast setting (:func:`~sedc.core.batching.recall_sizes`): a settled size is used at once
    and nothing is measured; an unfinished measurement goes on. What the sizer learns (each size
    measured, the size it settles on or shrinks to after running out of memory) is kept the
    same way for the next call.
    """

    def __init__(self, classifier: Classifier, device: torch.device, batch_size: int | str = "auto",
                 autocast: bool = False, max_batch: int | None = None, channels_last: bool = False) -> None:
        self.classifier = classifier
        self.device = device
        self.sizer = BatchSizer(batch_size, device, max_batch=max_batch)
        self.autocast = autocast
        self.channels_last = channels_last
        self.size_key: SizeKey | None = None
        self.model_time = 0.0
        self.n_images = 0
        self.n_calls = 0
        self.n_classes: int | None = None

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Validated (B, K) float scores of ``batch``, on the device (no synchronisation)."""
        if self.size_key is None:
            self._recall(batch)
        with torch.inference_mode():
            if self.autocast and self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.classifier(batch)
            else:
                out = self.classifier(batch)
        scores = as_scores(out, batch.shape[0]).float()
        if self.n_classes is None:
            self.n_classes = scores.shape[1]
        elif scores.shape[1] != self.n_classes:
            raise InputError(f"the classifier returned {scores.shape[1]} classes after returning "
                             f"{self.n_classes}; the number of classes must not change")
        return scores

    def _recall(self, batch: torch.Tensor) -> None:
        """Set :attr:`size_key` from the first batch; a fresh ``"auto"`` sizer adopts what was learned there."""
        self.size_key = (str(self.device), tuple(int(d) for d in batch.shape[1:]), self.channels_last,
                         self.autocast)
        learned = recall_sizes(self.classifier, self.size_key) if self.sizer.fresh else None
        if learned is not None:
            self.sizer.adopt(learned)

    def _remember(self) -> None:
        """Keep what an ``"auto"`` sizer learned for the next call on this classifier."""
        if self.sizer.auto and self.size_key is not None and (self.sizer.settled or self.sizer.per_image):
            remember_sizes(self.classifier, self.size_key, self.sizer.learned())

    def score(self, batch: torch.Tensor, original: torch.Tensor, target: torch.Tensor,
              started: float | None = None) -> Scores:
        """Scores of a composed batch, with per-row original and target classes (long tensors).

        ``started`` is when composing the batch began: the sizer judges a size by the time to
        compose and score its batch, the model's share (:attr:`model_time`) is counted apart.
        """
        start = time.perf_counter()
        picked = pick_scores(self.forward(batch), original, target)
        end = time.perf_counter()
        self.model_time += end - start
        self.n_images += batch.shape[0]
        self.n_calls += 1
        measured = len(self.sizer.per_image), self.sizer.settled
        self.sizer.record(batch.shape[0], end - (start if started is None else started))
        if (len(self.sizer.per_image), self.sizer.settled) != measured:
            self._remember()
        return picked

    def score_sets(self, compose: Callable[[list], torch.Tensor], sets: list, original: torch.Tensor,
                   target: torch.Tensor) -> Scores:
        """Compose and score ``sets``; on out-of-memory, halve the batch and retry the same sets."""
        try:
            started = time.perf_counter()
            return self.score(compose(sets), original, target, started)
        except Exception as err:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_out_of_memory(err):
                raise
        _free_cache(self.device)
        self.sizer.shrink()
        self._remember()
        parts, start = [], 0
        while start < len(sets):  # the size read anew each time: a nested failure shrinks it further
            stop = start + self.sizer.size
            parts.append(self.score_sets(compose, sets[start:stop], original[start:stop], target[start:stop]))
            start = stop
        return Scores(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("predicted", "top", "original", "target")))


def pick_scores(scores: torch.Tensor, original: torch.Tensor, target: torch.Tensor) -> Scores:
    """Per row: the predicted class (the first maximum on ties), its score, and the scores of
    the ``original`` and ``target`` classes, as float64 on the host.

    On the CPU numpy picks them from the scores in place (:func:`pick_on_host`: torch's small
    operations cost more there); elsewhere they are gathered on the device and copied back in
    one transfer (:func:`pick_on_device`). Both give the same numbers.
    """
    if scores.device.type == "cpu":
        return pick_on_host(scores, original, target)
    return pick_on_device(scores, original, target)


def pick_on_host(scores: torch.Tensor, original: torch.Tensor, target: torch.Tensor) -> Scores:
    """:func:`pick_scores` with numpy, for CPU tensors."""
    table = scores.numpy()
    rows = np.arange(table.shape[0])
    predicted = table.argmax(axis=1)
    return Scores(predicted.astype(np.int64), *(table[rows, c].astype(np.float64)
                                                for c in (predicted, original.numpy(), target.numpy())))


def pick_on_device(scores: torch.Tensor, original: torch.Tensor, target: torch.Tensor) -> Scores:
    """:func:`pick_scores` with torch on the scores' device, and one copy to the host."""
    predicted = scores.argmax(dim=1)  # first maximum on ties, like numpy.argmax
    rows = torch.arange(scores.shape[0], device=scores.device)
    packed = torch.stack([predicted.to(scores.dtype), scores[rows, predicted],
                          scores[rows, original], scores[rows, target]])
    host = packed.cpu().numpy().astype(np.float64)
    return Scores(host[0].astype(np.int64), host[1], host[2], host[3])


def _free_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
