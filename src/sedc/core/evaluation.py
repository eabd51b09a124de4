"""Model evaluation: validated forward passes, batch-size tuning and out-of-memory recovery."""

from __future__ import annotations

import time
from typing import Any, Callable
from weakref import WeakKeyDictionary

import numpy as np
import torch

from ..base.errors import InputError, OutOfMemoryError
from ..base.outputs import to_scores
from .search import Scores

Classifier = Callable[[torch.Tensor], Any]
SizeKey = tuple[str, tuple[int, ...], bool, bool]
"""Where a batch size was measured: ``(device, (C, H, W), channels_last, autocast)``."""

CPU_MAX_BATCH = 64
CUDA_MAX_BATCH = 1024
CPU_START_BATCH = 1  # auto measures 1, then 2, before judging growth: either can be fastest on a CPU
CUDA_START_BATCH = 16

_SETTLED: WeakKeyDictionary = WeakKeyDictionary()
# classifier -> {SizeKey: the size "auto" settled on}. Keyed weakly: a record lives exactly as long
# as the classifier object the user holds, and dies with it (see recall_batch_size).


def recall_batch_size(classifier: Any, key: SizeKey) -> int | None:
    """The batch size ``"auto"`` settled on for ``classifier`` under ``key`` in this process.

    Parameters
    ----------
    classifier : object
        The classifier object itself (a module, an ``OnnxClassifier``, a callable): a record
        belongs to that object, not to its architecture or weights, and is dropped with it.
    key : tuple
        ``(device, (C, H, W), channels_last, autocast)``: a size is reused only where it was
        measured.

    Returns
    -------
    int or None
        None when nothing was settled yet, or when ``classifier`` cannot be weakly referenced
        or hashed (nothing is remembered for such a classifier).
    """
    try:
        return _SETTLED.get(classifier, {}).get(key)
    except TypeError:
        return None


def remember_batch_size(classifier: Any, key: SizeKey, size: int) -> None:
    """Record ``size`` as what ``"auto"`` settled on for ``classifier`` under ``key``.

    See :func:`recall_batch_size`; a classifier that cannot be weakly referenced or hashed is
    skipped.
    """
    try:
        _SETTLED.setdefault(classifier, {})[key] = int(size)
    except TypeError:
        pass


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
    """Chooses batch sizes: fixed, or ``"auto"`` (the fastest per image, measured on the search's own batches).

    ``"auto"`` on a CPU measures a batch of 1, then of 2, then doubles while the time per image
    keeps dropping by at least ``min_gain`` against every smaller size; on CUDA it starts at 16
    and doubles the same way. It then settles on the fastest size seen (which may be 1 on a CPU).
    Each size is judged by the best of ``samples`` full batches after one warm-up batch, which
    keeps a noisy machine from stopping the growth early. The measured batches are real work of
    the search: nothing is evaluated twice or thrown away. An out-of-memory error halves the
    size and caps it (see :meth:`shrink`).

    A size settled on before, for the same classifier object where it was measured
    (:func:`recall_batch_size`), is taken with :meth:`adopt`: the search then starts at it and
    measures nothing.

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

    @property
    def fresh(self) -> bool:
        """Whether ``"auto"`` has measured nothing yet (no batch recorded at its size)."""
        return self.auto and not self.settled and not self._warm and not self.per_image

    def adopt(self, size: int) -> None:
        """Settle on ``size`` (within the cap) without measuring: a size remembered from before.

        Only a :attr:`fresh` ``"auto"`` sizer adopts; otherwise this does nothing.
        """
        if self.fresh:
            self.size, self.settled = max(1, min(int(size), self.cap)), True

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
    With ``batch_size="auto"``, the first batch (the unperturbed image) looks up the size
    ``"auto"`` settled on for this classifier object on the same device, image shape, memory
    format and autocast setting (:func:`recall_batch_size`); when there is one, the sizer starts
    there and measures nothing. A size the sizer settles on (or shrinks to after running out of
    memory) is remembered the same way for the next call.
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
        """Set :attr:`size_key` from the first batch; a fresh ``"auto"`` sizer adopts the size remembered there."""
        self.size_key = (str(self.device), tuple(int(d) for d in batch.shape[1:]), self.channels_last,
                         self.autocast)
        remembered = recall_batch_size(self.classifier, self.size_key) if self.sizer.fresh else None
        if remembered is not None:
            self.sizer.adopt(remembered)

    def _remember(self) -> None:
        """Remember the size of a settled ``"auto"`` sizer for the next call on this classifier."""
        if self.sizer.auto and self.sizer.settled and self.size_key is not None:
            remember_batch_size(self.classifier, self.size_key, self.sizer.size)

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
        settled = self.sizer.settled
        self.sizer.record(batch.shape[0], end - (start if started is None else started))
        if self.sizer.settled and not settled:
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
