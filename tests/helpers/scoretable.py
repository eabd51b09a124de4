"""Score tables: models whose scores are an exact, known function of the removed pixels.

A tool of its own beside the tiny networks of :mod:`helpers.models`: a :class:`TableModel` is not
a network but an exact score function, one table per image, with the search's answer computable
by brute force (:func:`best_counterfactual`, :func:`all_subsets`). Used by the property tests
(tests/test_properties.py) and by the hand-computed tests of the search, the engine, the seed API,
the reference and explain_many. An image is (1, 2, 1, W): channel 0 is 1 where a pixel is kept and
0 where it is removed (the fill is 0 there), channel 1 holds the image's id (id / 8 everywhere, in
the image and in the fill alike), so one model can hold a different table per image and
``explain_many`` can mix images in one batch.

For image ``id`` and the set R of removed pixels the scores are

    base[id] + sum_{p in R} weights[id][p] + sum_{p < q in R} pairs[id][p, q]

All values are multiples of 1/8, so every score, sum and difference is exact in float32 and in
float64: a tie in the table is a tie for sedc and for the reference alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch

WIDTH = 6
VALUES = (-0.5, -0.25, -0.125, 0.0, 0.0, 0.125, 0.25)  # the property tests' weights: few values, ties likely
PAIR_VALUES = (0.0, 0.0, 0.0, -0.25, 0.25, 0.5)  # and their pair terms


@dataclass(frozen=True)
class Table:
    """One image's scores: ``base`` (K,), ``weights`` (W, K), ``pairs`` (W, W, K) upper triangular."""

    base: np.ndarray
    weights: np.ndarray
    pairs: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.base)

    def scores(self, removed: frozenset | set) -> np.ndarray:
        """float32 (K,) scores with the pixels ``removed`` removed (computed like the model does)."""
        r = np.zeros(len(self.weights), np.float32)
        r[list(removed)] = 1
        return (self.base + r @ self.weights + np.einsum("i,j,ijk->k", r, r, self.pairs)).astype(np.float32)


class TableModel(torch.nn.Module):
    """Scores images by their table (see the module docstring) and records every set it sees."""

    def __init__(self, tables: list[Table]) -> None:
        super().__init__()
        self.tables = tables
        self.register_buffer("base", torch.as_tensor(np.stack([t.base for t in tables]), dtype=torch.float32))
        self.register_buffer("weights", torch.as_tensor(np.stack([t.weights for t in tables]), dtype=torch.float32))
        self.register_buffer("pairs", torch.as_tensor(np.stack([t.pairs for t in tables]), dtype=torch.float32))
        self.seen: list[tuple[int, frozenset]] = []  # (image id, removed pixel positions), in order
        self.batches: list[int] = []
        self.batch_ids: list[list[int]] = []  # the image id of each row, per model call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = torch.round(x[:, 1, 0, 0] * 8).long()
        removed = 1 - x[:, 0, 0, :]
        self.batches.append(x.shape[0])
        self.batch_ids.append(ids.tolist())
        for i, row in zip(ids.tolist(), removed):
            self.seen.append((i, frozenset(np.flatnonzero(row.numpy() > 0.5).tolist())))
        linear = torch.einsum("bp,bpk->bk", removed, self.weights[ids])
        pair = torch.einsum("bp,bq,bpqk->bk", removed, removed, self.pairs[ids])
        return self.base[ids] + linear + pair

    def seen_by(self, image_id: int) -> list[frozenset]:
        """The removed-pixel sets the model scored for image ``image_id``, in order."""
        return [s for i, s in self.seen if i == image_id]


SEG3 = np.array([[0, 0, 1, 1, 2, 2]], dtype=np.int64)
"""Segments of the default (width 6) image: three segments of two pixels."""


def flip_on_segment_1() -> TableModel:
    """Removing segment 1 of :data:`SEG3` (pixels 2, 3) moves class 1 from 0.5 to 1.5 over class 0's 1.0."""
    return TableModel([table_from([1.0, 0.5], [[0, 0], [0, 0], [0, 0.5], [0, 0.5], [0, 0], [0, 0]])])


def image(image_id: int = 0, width: int = WIDTH) -> torch.Tensor:
    """The (1, 2, 1, W) image of ``image_id``: all pixels kept."""
    x = torch.ones(1, 2, 1, width)
    x[:, 1] = image_id / 8
    return x


def fill(x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
    """The fill (a custom ``mode``): channel 0 removed, the id channel unchanged."""
    out = x.clone()
    out[:, 0] = 0
    return out


def image_hwc(image_id: int = 0, width: int = WIDTH) -> np.ndarray:
    """The image as the reference takes it, (1, W, 2) float32."""
    return image(image_id, width)[0].permute(1, 2, 0).numpy().copy()


def fill_hwc(image_id: int = 0, width: int = WIDTH) -> np.ndarray:
    """The fill as the reference takes it, (1, W, 2) float32."""
    return fill(image(image_id, width))[0].permute(1, 2, 0).numpy().copy()


def table_from(base, weights, pairs=None) -> Table:
    """A :class:`Table` from nested lists (pairs: dict ``{(p, q): [per-class values]}`` or None)."""
    weights = np.asarray(weights, np.float32)
    full = np.zeros((len(weights), len(weights), weights.shape[1]), np.float32)
    for (p, q), value in (pairs or {}).items():
        full[min(p, q), max(p, q)] = value
    return Table(np.asarray(base, np.float32), weights, full)


def pixels_to_labels(pixels: frozenset, segments: np.ndarray) -> frozenset:
    """The labels of the segments whose pixels are ``pixels`` (segments is (1, W))."""
    return frozenset(int(segments[0, p]) for p in pixels)


def labels_to_pixels(labels, segments: np.ndarray) -> frozenset:
    """The pixel positions of the segments ``labels`` (segments is (1, W))."""
    return frozenset(np.flatnonzero(np.isin(segments[0], list(labels))).tolist())


def is_counterfactual(scores: np.ndarray, original_class: int, target: int | None) -> bool:
    """Whether ``scores`` predict another class than ``original_class`` (SEDC) or ``target`` (SEDC-T)."""
    predicted = int(np.argmax(scores))
    return predicted != original_class if target is None else predicted == target


def best_counterfactual(sets: list[frozenset], table: Table, original_class: int, target: int | None
                        ) -> frozenset | None:
    """The answer rule of docs/algorithm.md among ``sets`` (pixel sets, in evaluation order):
    the counterfactual with the smallest original-class score (SEDC) or the highest target score
    (SEDC-T), the first evaluated on ties; None when no set is a counterfactual."""
    best, key = None, None
    for s in sets:
        scores = table.scores(s).astype(np.float64)
        if not is_counterfactual(scores, original_class, target):
            continue
        k = -scores[original_class] if target is None else scores[target]
        if best is None or k > key:
            best, key = s, k
    return best


def all_subsets(n: int):
    """Every non-empty subset of ``range(n)``, smallest first."""
    for size in range(1, n + 1):
        yield from (frozenset(c) for c in combinations(range(n), size))
