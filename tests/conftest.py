"""Shared fixtures: the real model, the real photos, and small hand-computable models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")


@pytest.fixture(scope="session", autouse=True)
def sedc_cache(tmp_path_factory):
    """ONNX exports (sedc.accelerate, --runtime) go to a folder of this test session, never to the
    user's cache; subprocesses inherit it through the environment."""
    import os

    folder = tmp_path_factory.mktemp("sedc-cache")
    before = os.environ.get("SEDC_CACHE")
    os.environ["SEDC_CACHE"] = str(folder)
    yield folder
    if before is None:
        del os.environ["SEDC_CACHE"]
    else:
        os.environ["SEDC_CACHE"] = before


@pytest.fixture(scope="session")
def real_model():
    """The built-in EfficientNet-Lite0 (softmax outputs, [0, 1] inputs), on the CPU."""
    import sedc.models

    return sedc.models.load("efficientnet-lite0", device="cpu")


def load_photo(name: str, size: int = 224) -> np.ndarray:
    """A scikit-image sample photo as (size, size, 3) float32 in [0, 1]."""
    from skimage import data, transform

    image = transform.resize(getattr(data, name)(), (size, size), anti_aliasing=True)
    return np.clip(image, 0, 1).astype(np.float32)


@pytest.fixture(scope="session")
def photos():
    """name -> (image, quickshift segments) for the four photos, quickshift as in the paper."""
    from sedc.imaging.segmentation import segment

    out = {}
    for name in PHOTOS:
        image = load_photo(name)
        out[name] = (image, segment(image, "quickshift"))
    return out


@pytest.fixture(scope="session")
def oracle(real_model, photos):
    """The reference's answer (the original search with the torch model), once per (photo, mode)."""
    from sedc import reference

    cache = {}

    def get(name, mode):
        if (name, mode) not in cache:
            image, segments = photos[name]
            cache[name, mode] = reference.sedc(image, reference.TorchPredictor(real_model.module), segments, mode)
        return cache[name, mode]

    return get


class RegionModel(torch.nn.Module):
    """A tiny classifier whose scores are linear in how much of each grid cell is removed.

    The image is all ones and the fill all zeros, so cell j's "removed fraction" is
    ``1 - mean(cell j)``. Scores: ``base + removed @ weights`` (shape (B, K)), plus, when
    ``pairs`` (N, N, K) is given, the interaction ``removed_i * removed_j * pairs[i, j]``.
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


def grid_segments(rows: int, cols: int, cell: int = 4) -> np.ndarray:
    """A rows x cols grid of square cells, labels 0..rows*cols-1."""
    return np.kron(np.arange(rows * cols).reshape(rows, cols), np.ones((cell, cell), dtype=np.int64))


def zeros_fill(image: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Custom fill: black."""
    return torch.zeros_like(image)
