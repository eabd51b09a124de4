"""Batch sizes: :class:`BatchSizer` (fixed, or ``"auto"``), and what ``"auto"`` learned per model.

``"auto"`` judges sizes on the search's own batches, so measuring costs no evaluations. What it
learned (the sizes measured so far and, once settled, its choice) is kept per classifier object
in a :class:`~weakref.WeakKeyDictionary` (:func:`recall_sizes`, :func:`remember_sizes`): a record
lives as long as the model object the user holds and goes with it, and the next ``explain`` or
``explain_many`` on that object starts from it instead of measuring again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import torch

from ..base.errors import OutOfMemoryError

SizeKey = tuple[str, tuple[int, ...], bool, bool]
"""Where batch sizes were measured: ``(device, (C, H, W), channels_last, autocast)``."""

CPU_MAX_BATCH = 16  # auto's ceiling on a CPU: ONNX Runtime ran EfficientNet-Lite0 at 8.0, 8.2 and
# 8.25 ms per image at 8, 16 and 32 (torch is slower beyond 2), and a flat curve must not climb to
# batches the search never fills
CUDA_MAX_BATCH = 1024
CPU_START_BATCH = 1  # auto measures 1, then 2, before judging growth: either can be fastest on a CPU
CUDA_START_BATCH = 16
CPU_SAMPLES = 3  # a shared CPU's timings are noisy: the best of 3 batches judges a size
CUDA_SAMPLES = 2
CPU_MIN_GAIN = 0.0  # grow while the newest size is the fastest: a noisy 5% rule stopped at 1 or 2
CUDA_MIN_GAIN = 0.05


@dataclass
class SizeRecord:
    """What ``"auto"`` learned for one model under one :data:`SizeKey`.

    Attributes
    ----------
    size : int
        The size it settled on, or the size it was measuring when the last call ended.
    settled : bool
        Whether it settled.
    per_image : dict of int to float
        Seconds per image of each size measured so far.
    """

    size: int
    settled: bool
    per_image: dict[int, float] = field(default_factory=dict)


_LEARNED: WeakKeyDictionary = WeakKeyDictionary()
# classifier object -> {SizeKey: SizeRecord}; keyed weakly, so a record goes with its model.


def recall_sizes(classifier: Any, key: SizeKey) -> SizeRecord | None:
    """What ``"auto"`` learned for ``classifier`` under ``key`` in this process, if anything.

    Parameters
    ----------
    classifier : object
        The classifier object itself (a module, an ``OnnxClassifier``, a callable): a record
        belongs to that object, not to its architecture or weights, and is dropped with it.
    key : tuple
        ``(device, (C, H, W), channels_last, autocast)``: sizes are reused only where they were
        measured.

    Returns
    -------
    SizeRecord or None
        None when nothing was measured yet, or when ``classifier`` cannot be weakly referenced
        or hashed (nothing is remembered for such a classifier).
    """
    try:
        return _LEARNED.get(classifier, {}).get(key)
    except TypeError:
        return None


def remember_sizes(classifier: Any, key: SizeKey, record: SizeRecord) -> None:
    """Keep ``record`` for ``classifier`` under ``key`` (see :func:`recall_sizes`); a classifier
    that cannot be weakly referenced or hashed is skipped."""
    try:
        _LEARNED.setdefault(classifier, {})[key] = record
    except TypeError:
        pass


def recall_batch_size(classifier: Any, key: SizeKey) -> int | None:
    """The batch size ``"auto"`` settled on for ``classifier`` under ``key``; None if it has not."""
    record = recall_sizes(classifier, key)
    return record.size if record is not None and record.settled else None


class BatchSizer:
    """Chooses batch sizes: fixed, or ``"auto"`` (the fastest per image, measured on the search's own batches).

    ``"auto"`` on a CPU measures a batch of 1, then of 2, then doubles while the newest size is
    the fastest per image so far; on CUDA it starts at 16 and doubles while the time per image
    drops by at least 5% against every smaller size (``min_gain``). It then settles on the
    fastest size seen (which may be 1 on a CPU).
    Each size is judged by the best of ``samples`` full batches after one warm-up batch (the
    best, because a shared machine's noise only ever slows a batch down). The measured batches
    are real work of the search: nothing is evaluated twice or thrown away. An out-of-memory
    error halves the size and caps it (see :meth:`shrink`).

    What an earlier call learned for the same model (:func:`recall_sizes`) is taken with
    :meth:`adopt`: a settled size is used at once, measuring nothing; a measurement that a short
    search left unfinished goes on where it stopped.

    Parameters
    ----------
    batch_size : int or "auto"
    device : torch.device
    max_batch : int, optional
        Upper bound (for example a memory cap); defaults depend on the device.
    min_gain : float, optional
        Relative per-image time improvement needed to keep growing (default 0 on a CPU: any
        improvement; 0.05 on CUDA).
    samples : int, optional
        Full batches measured per size (default 3 on a CPU, 2 on CUDA).
    """

    def __init__(self, batch_size: int | str, device: torch.device, max_batch: int | None = None,
                 min_gain: float | None = None, samples: int | None = None) -> None:
        cuda = device.type == "cuda"
        self.auto = batch_size == "auto"
        self.cap = max_batch or ((CUDA_MAX_BATCH if cuda else CPU_MAX_BATCH) if self.auto else int(batch_size))
        start = CUDA_START_BATCH if cuda else CPU_START_BATCH
        self.size = min(start, self.cap) if self.auto else min(int(batch_size), self.cap)
        self.settled = not self.auto
        self.min_gain = (CUDA_MIN_GAIN if cuda else CPU_MIN_GAIN) if min_gain is None else min_gain
        self.samples = samples or (CUDA_SAMPLES if cuda else CPU_SAMPLES)
        self.per_image: dict[int, float] = {}
        self._seen: list[float] = []
        self._warm = False

    @property
    def fresh(self) -> bool:
        """Whether ``"auto"`` has measured nothing yet (no batch recorded at its size)."""
        return self.auto and not self.settled and not self._warm and not self.per_image

    def learned(self) -> SizeRecord:
        """What this sizer learned so far, to hand to the next call (a copy)."""
        return SizeRecord(self.size, self.settled, dict(self.per_image))

    def adopt(self, record: SizeRecord) -> None:
        """Start from what an earlier call learned (only a :attr:`fresh` ``"auto"`` sizer does).

        A settled size is taken at once (within the cap); an unfinished measurement goes on at
        the size it had reached, with the sizes measured before.
        """
        if not self.fresh:
            return
        self.size = max(1, min(record.size, self.cap))
        self.settled = record.settled
        self.per_image = {k: v for k, v in record.per_image.items() if k <= self.cap}

    def record(self, n: int, seconds: float) -> None:
        """Record that a batch of ``n`` images took ``seconds`` (composing it and the model)."""
        if self.settled or n != self.size:
            return
        if not self._warm:  # the first full batch of a new shape pays one-off costs
            self._warm = True
            return
        self._seen.append(seconds / n)
        if len(self._seen) < self.samples:
            return
        self.per_image[n], self._seen = min(self._seen), []
        self._next(n)

    def _next(self, n: int) -> None:
        """After size ``n`` is measured: double it, or settle on the fastest size seen."""
        best = min(self.per_image, key=self.per_image.get)
        if self.size * 2 <= self.cap and (n == 1 or best == n and self._improved(n)):
            self.size *= 2  # 1 always goes on to 2: one size alone says nothing about the trend
            self._warm = False
        else:
            self.size, self.settled = best, True

    def _improved(self, n: int) -> bool:
        smaller = [v for k, v in self.per_image.items() if k < n]
        return not smaller or self.per_image[n] < (1 - self.min_gain) * min(smaller)

    def chunk(self, available: int) -> int:
        """How many of ``available`` candidates to put in the next batch.

        While measuring, exactly the size being measured. Once settled, the candidates are split
        into equal batches no larger than the size (33 at size 8 gives 7+7+7+6+6, not 8+8+8+8+1:
        a lone remainder is the slowest batch per image).
        """
        if not self.settled or available <= self.size:
            return min(self.size, available)
        batches = -(-available // self.size)
        return -(-available // batches)

    def shrink(self) -> int:
        """Halve after an out-of-memory error; returns the new size (raises when already 1)."""
        if self.size <= 1:
            raise OutOfMemoryError("the model ran out of device memory on a batch of one image")
        self.size = max(1, self.size // 2)
        self.cap = self.size
        self._seen = []
        self.per_image = {k: v for k, v in self.per_image.items() if k <= self.size}
        return self.size
