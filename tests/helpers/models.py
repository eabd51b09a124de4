"""The tiny networks of the tests: one family, each model small, deterministic and picklable.

Classes defined here are importable by name (``helpers.models.X``) in worker processes, Ray
actors and ``sedc explain --model helpers.models:FACTORY`` subprocesses (see :mod:`helpers`).

Random-weight networks (the answer is whatever the search finds; tests compare two paths)
    :class:`TinyNet`
        A fixed random conv net in float64 (scores independent of batching): the classifier of
        the multi-image, worker, Ray, options and model-spec tests.
    :class:`FailOnSentinel`, :class:`FailOnSentinelBatch`, :class:`ExitOnSentinel`, :class:`RandomExit`
        :class:`TinyNet` that raises, or kills its process, on the image marked with
        :data:`helpers.images.SENTINEL` (or at random: the worker-death stress test).
    :class:`BrokenFactory`
        A model factory that raises.
    :class:`TrainModeNet`, :func:`train_mode_net`
        BatchNorm and Dropout, built in training mode: the training-mode tests.
    :class:`SeededConvNet`
        A float32 conv net seeded by ``torch.manual_seed(0)``: validation and model-loading tests
        (TorchScript, tracing, ``Normalized``, the runtime choice).

Models whose answers are worked out by hand
    :class:`Cells`, :func:`quadrants`
        Class k is a multiple of the brightness of one grid cell: easy to flip (the explain,
        fill and seed tests on the coffee photo; ``Cells(every=4)``, three classes, is the
        TorchScript file of the command-line tests).
    :class:`HandshakeCells`, :func:`handshake_cells`
        :class:`Cells` that can hold its node's batch while a test kills the node (two-node Ray).
    :class:`RegionModel`
        Scores linear (plus pair terms) in the removed fraction of each cell of an all-ones
        image: the hand-computed searches (test_search, test_evaluation, test_engine, test_seed).
    :class:`LookupModel`
        Scores looked up by the set of removed cells; a set missing from the table raises (the
        worked example of docs/algorithm.md).
    :class:`ChangedIsClass1`, :class:`AnyChangeFlips`
        Flip to class 1 as soon as anything changes (the reference's and explain's defaults).
    :class:`StripeModel`, :func:`stripe_model`
        Class 0 is the redness of the left stripe: the benchmark's tiny context
        (:func:`helpers.bench.tiny_context`).

Elsewhere: exact score tables live in :mod:`helpers.scoretable` (a different tool: scores are
sums of multiples of 1/8, one table per image id). Models that exist to exercise one feature stay
beside their test: ONNX-export edge cases (``test_runtime``, ``test_model_specs``), output
wrappers (``test_model_specs.Wrapped``), instrumented subclasses (``test_evaluation.OomAbove``,
``test_engine.SlowTable``), the deliberately unpicklable ``Local`` of ``test_many``, and factory
modules written as text into a temporary folder (the ``package.module:factory`` tests of
``test_cli``, ``test_cli_runtime`` and ``test_model_specs``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers.images import SENTINEL

# ---------------------------------------------------------------------------- random weights


class TinyNet(torch.nn.Module):
    """A fixed random conv net (3 -> 6 channels, ReLU, 2 x 2 pooling, linear to 5 classes).

    Computes in float64 so that scores do not depend on how rows are batched.
    """

    def __init__(self, seed: int = 1, classes: int = 5) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1).double()
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen, dtype=torch.float64))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=gen, dtype=torch.float64))
        self.register_buffer("weight", torch.randn(6 * 4, classes, generator=gen, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x.double() * 2 - 1))
        pooled = torch.nn.functional.adaptive_avg_pool2d(h, 2).flatten(1)
        return (pooled @ self.weight).float()


def has_sentinel(x: torch.Tensor) -> torch.Tensor:
    """Per row: whether pixel (0, 0) holds SENTINEL in every channel."""
    return (x[:, :, 0, 0] == torch.tensor(SENTINEL, dtype=x.dtype)).all(dim=1)


class FailOnSentinel(TinyNet):
    """Raises on any batch holding the sentinel image (its unperturbed image included)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(has_sentinel(x).any()):
            raise ValueError("sentinel image")
        return super().forward(x)


class FailOnSentinelBatch(TinyNet):
    """Raises only on candidate batches (more than one row) holding the sentinel image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1 and bool(has_sentinel(x).any()):
            raise ValueError("sentinel batch")
        return super().forward(x)


class ExitOnSentinel(TinyNet):
    """Kills its process on the sentinel image (for worker processes and Ray actors only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(has_sentinel(x).any()):
            os._exit(1)
        return super().forward(x)


class RandomExit(TinyNet):
    """Kills its process at random points (the worker-death stress test), and always on SENTINEL.

    In each process the first forward call draws, with probability ``timer_rate``, a timer that
    calls ``os._exit`` after up to ``max_delay`` seconds wherever the process then is: inside a
    batch, pickling or sending a result, or waiting for the next chunk. Every forward call also
    exits at once with probability ``rate``. Draws come from a generator seeded by ``kill_seed``
    and the process id, so a replacement worker draws afresh.
    """

    def __init__(self, kill_seed: int, rate: float, timer_rate: float, max_delay: float = 0.3) -> None:
        super().__init__()
        self.kill_seed, self.rate, self.timer_rate, self.max_delay = kill_seed, rate, timer_rate, max_delay
        self._rng = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._rng is None:
            import random
            import threading

            self._rng = random.Random(f"{self.kill_seed}-{os.getpid()}")
            if self._rng.random() < self.timer_rate:
                timer = threading.Timer(self._rng.uniform(0, self.max_delay), os._exit, (4,))
                timer.daemon = True
                timer.start()
        if bool(has_sentinel(x).any()) or self._rng.random() < self.rate:
            os._exit(3)
        return super().forward(x)


class BrokenFactory:
    """A factory that cannot build its model."""

    def __call__(self) -> torch.nn.Module:
        raise RuntimeError("no model here")


class TrainModeNet(torch.nn.Module):
    """Conv, BatchNorm, ReLU, Dropout(0.5), pooling, linear: built in training mode, as torch does.

    Its BatchNorm holds running statistics far from any batch's own, so training mode (batch
    statistics, dropout) and eval mode give different scores. Float64, so scores do not depend
    on how rows are batched.
    """

    def __init__(self, seed: int = 3, classes: int = 5) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1).double()
        self.norm = torch.nn.BatchNorm2d(6).double()
        self.drop = torch.nn.Dropout(0.5)
        self.head = torch.nn.Linear(6 * 4, classes).double()
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64))
            self.norm.running_mean.copy_(torch.randn(6, generator=gen, dtype=torch.float64))
            self.norm.running_var.copy_(torch.rand(6, generator=gen, dtype=torch.float64) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.norm(self.conv(x.double() * 2 - 1))))
        return self.head(torch.nn.functional.adaptive_avg_pool2d(h, 2).flatten(1)).float()


def train_mode_net() -> torch.nn.Module:
    """A factory returning a :class:`TrainModeNet` in training mode (as torchvision builders do)."""
    return TrainModeNet()


class SeededConvNet(nn.Module):
    """Conv (3 -> 8, 3 x 3), ReLU, global mean, linear: (B, 3, H, W) -> (B, classes) logits.

    Float32 weights drawn after ``torch.manual_seed(0)`` (which the constructor calls: building one
    reseeds torch's global generator), so two instances with the same ``classes`` are equal.
    TorchScript-able and traceable.
    """

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class StripeModel(nn.Module):
    """Two classes: class 0 scores the redness of the four left columns, class 1 is a constant.

    The photo of :func:`helpers.bench.tiny_context` is red there, so removing the first stripe
    flips the class at once: every search ends after a handful of evaluations.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
        self.bias = nn.Parameter(torch.tensor([0.0, 0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.conv(x)[:, 0, :, :4].mean(dim=(1, 2))
        return torch.stack([left, torch.zeros_like(left)], dim=1) + self.bias


def stripe_model() -> nn.Module:
    """A :class:`StripeModel` in eval mode."""
    return StripeModel().eval()


# ---------------------------------------------------------------------------- worked by hand


class Cells(nn.Module):
    """Class k is ``gain`` times the mean brightness of cell ``every * k`` of a ``side`` x ``side`` grid.

    The cells are the image's ``adaptive_avg_pool2d`` cells, row-major; there are
    ``ceil(side**2 / every)`` classes. Defaults: a 3 x 3 grid, cells 0, 2, 4, 6, 8 (5 classes),
    gain 20. ``Cells(side=2, every=1, gain=10.0)`` scores the four quadrants. TorchScript-able.
    """

    def __init__(self, side: int = 3, every: int = 2, gain: float = 20.0) -> None:
        super().__init__()
        self.side, self.every, self.gain = side, every, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cells = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), self.side).flatten(1)
        return self.gain * cells[:, 0::self.every]


def quadrants() -> Cells:
    """Class k is ten times the mean brightness of quadrant k (row-major, 2 x 2): easy to flip.

    On the 32 x 32 coffee photo the brightest quadrant is 1 (top right, scores 4.10, 5.38, 3.01,
    2.98): darkening enough of it changes the class, so searches on it really find something.
    """
    return Cells(side=2, every=1, gain=10.0)


HOLD_LIMIT = 120.0  # seconds: never hang a test run for ever
WAIT_LIMIT = 60.0


class HandshakeCells(Cells):
    """:class:`Cells` (defaults) for the two-node Ray tests, with a handshake on candidate batches.

    On a node started with ``SEDC_TEST_GATE=DIR`` in its environment, the model takes part, on its
    batches of candidates (so that loading the model and the first evaluation pass), in a
    handshake that pins down what a node holds when the test kills it: on the node with
    ``SEDC_TEST_ROLE=hold`` the model writes ``DIR/held`` and then waits (until its node is
    killed, at most :data:`HOLD_LIMIT` seconds); on the node with ``SEDC_TEST_ROLE=wait`` it waits
    for ``DIR/held`` first (at most :data:`WAIT_LIMIT` seconds). Without these variables (the
    single-process reference run) it is plain :class:`Cells`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:  # candidate batches only: the model's load-time probe passes
            _handshake()
        return super().forward(x)


def _handshake() -> None:
    gate, role = os.environ.get("SEDC_TEST_GATE"), os.environ.get("SEDC_TEST_ROLE")
    if not gate or not role:
        return
    held = Path(gate) / "held"
    if role == "hold":
        held.touch()
        time.sleep(HOLD_LIMIT)
    elif role == "wait":
        deadline = time.monotonic() + WAIT_LIMIT
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def handshake_cells() -> nn.Module:
    """The factory of ``--model helpers.models:handshake_cells``: a :class:`HandshakeCells` in eval mode."""
    return HandshakeCells().eval()


class RegionModel(torch.nn.Module):
    """A tiny classifier whose scores are linear in how much of each grid cell is removed.

    The image is all ones and the fill all zeros, so cell j's "removed fraction" is
    ``1 - mean(cell j)``. Scores: ``base + removed @ weights`` (shape (B, K)), plus, when
    ``pairs`` (N, N, K) is given, the interaction ``removed_i * removed_j * pairs[i, j]``.
    Every batch it sees is kept in ``calls``.

    Parameters
    ----------
    segments : ndarray
        The label map (its labels, in ascending order, are the cells 0..N-1).
    weights : ndarray
        (N, K) per-cell effects.
    base : ndarray
        (K,) scores of the unperturbed image.
    pairs : ndarray, optional
        (N, N, K) pair interactions.
    """

    def __init__(self, segments: np.ndarray, weights: np.ndarray, base: np.ndarray,
                 pairs: np.ndarray | None = None) -> None:
        super().__init__()
        labels = np.unique(segments)
        onehot = (segments[None] == labels[:, None, None]).astype(np.float32)
        onehot /= onehot.sum(axis=(1, 2), keepdims=True)
        self.register_buffer("cells", torch.from_numpy(onehot))
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))
        self.register_buffer("base", torch.as_tensor(base, dtype=torch.float32))
        n, k = self.weights.shape
        pairs = np.zeros((n, n, k)) if pairs is None else pairs
        self.register_buffer("pairs", torch.as_tensor(pairs, dtype=torch.float32))
        self.calls: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.detach().clone())
        kept = torch.einsum("bhw,nhw->bn", x[:, 0], self.cells)
        removed = 1 - kept
        return self.base + removed @ self.weights + torch.einsum("bi,bj,ijk->bk", removed, removed, self.pairs)

    def removed_sets(self) -> list[frozenset]:
        """The set of removed cells of every image the model saw, in order."""
        out = []
        for batch in self.calls:
            kept = torch.einsum("bhw,nhw->bn", batch[:, 0], self.cells)
            out.extend(frozenset(np.flatnonzero(row < 0.5).tolist()) for row in kept.numpy())
        return out


class LookupModel(torch.nn.Module):
    """Scores looked up by the set of removed cells (image all ones, fill all zeros).

    ``table`` maps each set of cells (any iterable of cell indices) to its scores. A set missing
    from ``table`` raises: the search must never evaluate it.
    """

    def __init__(self, segments: np.ndarray, table: dict) -> None:
        super().__init__()
        self.inner = RegionModel(segments, np.zeros((len(np.unique(segments)), 1), np.float32),
                                 np.zeros(1, np.float32))
        self.table = {frozenset(k): v for k, v in table.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inner.calls.clear()
        self.inner(x)
        return torch.tensor([self.table[s] for s in self.inner.removed_sets()], dtype=torch.float32)


class ChangedIsClass1(torch.nn.Module):
    """Class 0 for the image it was made with, class 1 for any changed one.

    Parameters
    ----------
    image : ndarray
        The (H, W, C) float32 image that scores class 0.
    """

    def __init__(self, image: np.ndarray) -> None:
        super().__init__()
        self.original = torch.from_numpy(image).permute(2, 0, 1)[None]

    def forward(self, x):
        changed = (x != self.original).flatten(1).any(dim=1).float()
        return torch.stack([1 - changed, changed], dim=1)


class AnyChangeFlips(torch.nn.Module):
    """Class 1 as soon as any pixel of channel 0 is not 1 (an all-ones image is class 0).

    Parameters
    ----------
    conv : bool
        Hold an (unused) convolution, which makes ``channels_last="auto"`` choose the
        channels-last layout.

    Attributes
    ----------
    layouts : list of bool
        For each batch of more than one image (a batch of one is contiguous in both layouts):
        whether it came channels-last.
    """

    def __init__(self, conv: bool = False) -> None:
        super().__init__()
        if conv:
            self.conv = torch.nn.Conv2d(2, 1, 1)
        self.layouts: list[bool] = []

    def forward(self, x):
        if x.shape[0] > 1:
            self.layouts.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        changed = (x[:, 0] != 1).flatten(1).any(dim=1).float()
        return torch.stack([1 - changed, changed], dim=1)
