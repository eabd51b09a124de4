"""Tiny picklable models, images and loaders for the multi-image tests.

A module of its own (not ``conftest``) so that worker processes and Ray actors can import it by
name: spawned worker processes inherit ``sys.path``; Ray workers get this folder on ``PYTHONPATH``
(see ``tests/test_ray.py``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

SIZE = 12     # image side (pixels)
CELL = 4      # grid cell side: a 3 x 3 grid, 9 segments
SENTINEL = 0.3  # not a multiple of 1/256: no other test image (nor its mean fill) holds it


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


def tiny_image(seed: int, sentinel: bool = False, side: int = SIZE) -> np.ndarray:
    """A (side, side, 3) float32 image of multiples of 1/256; optionally SENTINEL at pixel (0, 0)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(side, side, 3)).astype(np.float32) / 256
    if sentinel:
        image[0, 0, :] = SENTINEL
    return image


def grid(side: int = SIZE, cell: int = CELL) -> np.ndarray:
    """The grid label map of square ``cell`` cells (default: the 3 x 3 grid of the tiny images)."""
    n = side // cell
    return np.kron(np.arange(n * n).reshape(n, n), np.ones((cell, cell), dtype=np.int64))


def load_array(image: np.ndarray) -> np.ndarray:
    """A trivial picklable loader body (use with functools.partial)."""
    return image


def fail_loading(name: str) -> np.ndarray:
    """A loader that always fails (use with functools.partial)."""
    raise OSError(f"cannot read {name}")


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
