"""Model evaluation: validated forward passes, batch-size tuning and out-of-memory recovery."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from ..base.errors import InputError, OutOfMemoryError
from ..base.outputs import to_scores
from .search import Scores

Classifier = Callable[[torch.Tensor], Any]

CPU_MAX_BATCH = 64
CUDA_MAX_BATCH = 1024
CPU_START_BATCH = 2  # auto starts here: batches of 1 are the slowest per image on every CPU measured
CUDA_START_BATCH = 16


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


class BatchSizer:
    """Chooses batch sizes: fixed, or ``"auto"`` (grow while throughput improves).

    ``"auto"`` starts small (2 on CPU, 16 on CUDA) and doubles while the time per image keeps dropping by at least
    ``min_gain``, then settles on the fastest size seen. Each size is judged by the best of
    ``samples`` full batches (after one warm-up batch), which keeps a noisy machine from
    stopping the growth early. An out-of-memory error halves the size and caps it
    (see :meth:`shrink`).

    Parameters
    ----------
    batch_size : int or "auto"
    device : torch.device
    max_batch : int, optional
        Upper bound (for example a memory cap); defaults depend on the device.
    min_gain : float
        Relative per-image time improvement needed to keep growing.
    samples : int
        Full batches measured per size.
    """

    def __init__(self, batch_size: int | str, device: torch.device, max_batch: int | None = None,
                 min_gain: float = 0.05, samples: int = 2) -> None:
        self.auto = batch_size == "auto"
        default_cap = CUDA_MAX_BATCH if device.type == "cuda" else CPU_MAX_BATCH
        self.cap = max_batch or (default_cap if self.auto else int(batch_size))
        start = CUDA_START_BATCH if device.type == "cuda" else CPU_START_BATCH
        self.size = min(start, self.cap) if self.auto else min(int(batch_size), self.cap)
        self.settled = not self.auto
        self.min_gain = min_gain
        self.samples = samples
        self.per_image: dict[int, float] = {}
        self._seen: list[float] = []
        self._warm = False

    def record(self, n: int, seconds: float) -> None:
        """Record that a batch of ``n`` images took ``seconds`` in the model."""
        if self.settled or n != self.size:
            return
        if not self._warm:  # the first full batch of a new shape pays one-off costs
            self._warm = True
            return
        self._seen.append(seconds / n)
        if len(self._seen) < self.samples:
            return
        self.per_image[n], self._seen = min(self._seen), []
        best = min(self.per_image, key=self.per_image.get)
        if best == n and self.size * 2 <= self.cap and self._improved(n):
            self.size *= 2
            self._warm = False
        else:
            self.size, self.settled = best, True

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

    def _improved(self, n: int) -> bool:
        smaller = [v for k, v in self.per_image.items() if k < n]
        return not smaller or self.per_image[n] < (1 - self.min_gain) * min(smaller)

    def shrink(self) -> int:
        """Halve after an out-of-memory error; returns the new size (raises when already 1)."""
        if self.size <= 1:
            raise OutOfMemoryError("the model ran out of device memory on a batch of one image")
        self.size = max(1, self.size // 2)
        self.cap = self.size
        self._seen = []
        self.per_image = {k: v for k, v in self.per_image.items() if k <= self.size}
        return self.size


class Evaluator:
    """Runs a classifier on candidate batches under ``torch.inference_mode``.

    Each call makes one host synchronisation: the per-candidate predicted class and the scores the
    search needs are gathered on the device and copied back together.

    Parameters
    ----------
    classifier : callable
        Maps (B, C, H, W) tensors to (B, K) scores.
    device : torch.device
    batch_size : int or "auto"
    autocast : bool
        Run the model under ``torch.autocast`` (CUDA: float16).
    """

    def __init__(self, classifier: Classifier, device: torch.device, batch_size: int | str = "auto",
                 autocast: bool = False, max_batch: int | None = None) -> None:
        self.classifier = classifier
        self.device = device
        self.sizer = BatchSizer(batch_size, device, max_batch=max_batch)
        self.autocast = autocast
        self.model_time = 0.0
        self.n_images = 0
        self.n_calls = 0
        self.n_classes: int | None = None

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Validated (B, K) float scores of ``batch``, on the device (no synchronisation)."""
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

    def score(self, batch: torch.Tensor, original: torch.Tensor, target: torch.Tensor) -> Scores:
        """Scores of a composed batch, with per-row original and target classes (long tensors)."""
        start = time.perf_counter()
        scores = self.forward(batch)
        predicted = scores.argmax(dim=1)  # first maximum on ties, like numpy.argmax
        rows = torch.arange(scores.shape[0], device=scores.device)
        packed = torch.stack([predicted.to(scores.dtype), scores[rows, predicted],
                              scores[rows, original], scores[rows, target]])
        host = packed.cpu().numpy().astype(np.float64)
        elapsed = time.perf_counter() - start
        self.model_time += elapsed
        self.n_images += batch.shape[0]
        self.n_calls += 1
        self.sizer.record(batch.shape[0], elapsed)
        return Scores(host[0].astype(np.int64), host[1], host[2], host[3])

    def score_sets(self, compose: Callable[[list], torch.Tensor], sets: list, original: torch.Tensor,
                   target: torch.Tensor) -> Scores:
        """Compose and score ``sets``; on out-of-memory, halve the batch and retry the same sets."""
        try:
            return self.score(compose(sets), original, target)
        except Exception as err:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_out_of_memory(err):
                raise
        _free_cache(self.device)
        self.sizer.shrink()
        parts, start = [], 0
        while start < len(sets):  # the size read anew each time: a nested failure shrinks it further
            stop = start + self.sizer.size
            parts.append(self.score_sets(compose, sets[start:stop], original[start:stop], target[start:stop]))
            start = stop
        return Scores(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("predicted", "top", "original", "target")))


def _free_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
