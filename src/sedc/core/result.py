"""What a search returns: :class:`Explanation`.

It sits above :mod:`sedc.display`, which draws it (``Explanation.plot``), and below the engine
that makes it; the JSON form of a result (``to_dict``) follows :mod:`sedc.base.schema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..base.deprecated import renamed_attribute
from ..base.schema import EXPLANATION_FIELDS


@dataclass
class Explanation:
    """A counterfactual explanation of one image.

    Attributes
    ----------
    removed : list of int
        Labels of the removed segments (regions of ``segmentation``), ascending. Empty when
        nothing was found. (``segments``, its name before 0.2, still works, with a
        ``DeprecationWarning``.)
    found : bool
        Whether a counterfactual was found.
    original_class, original_score :
        Predicted class of the unperturbed image and its score.
    new_class, new_score :
        Predicted class of the counterfactual and its score (equal to the original ones when
        nothing was found).
    original_class_score : float
        Score of ``original_class`` on the counterfactual image.
    target : int or None
        The SEDC-T target class, or None for plain SEDC.
    mode : str
        The fill mode (``"custom"`` for a callable or a ready fill).
    n_evaluations : int
        Model evaluations used, the unperturbed image included.
    elapsed : float
        Wall-clock seconds of the search (fill and segmentation excluded).
    stop_reason : str
        ``"found"``, ``"exhausted"``, ``"max_time"`` or ``"max_evals"``.
    n_segments : int
        Number of distinct segments in the image.
    mask : numpy.ndarray
        (H, W) bool, True on the removed segments.
    perturbed_image : torch.Tensor
        (1, C, H, W) CPU tensor: the image with the segments removed.
    explanation_image : numpy.ndarray
        (H, W, C) array: the image inside the removed segments, zeros elsewhere (the seed's output).
    image : torch.Tensor
        (1, C, H, W) CPU tensor: the explained image.
    segmentation : numpy.ndarray
        (H, W) integer label map used by the search: the image's segments.
    search : str
        The search strategy that ran: ``"exact"``, ``"fast"`` or ``"beam(W)"`` with its width.
    n_model_calls : int
        Model batches the search was fed from, the unperturbed image's included (with
        ``explain_many``, a batch shared by several images counts once for each).
    """

    removed: list[int]
    found: bool
    original_class: int
    original_score: float
    new_class: int
    new_score: float
    original_class_score: float
    target: int | None
    mode: str
    n_evaluations: int
    elapsed: float
    stop_reason: str
    n_segments: int
    mask: np.ndarray = field(repr=False)
    perturbed_image: torch.Tensor = field(repr=False)
    explanation_image: np.ndarray = field(repr=False)
    image: torch.Tensor = field(repr=False)
    segmentation: np.ndarray = field(repr=False)
    search: str = "exact"
    n_model_calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The explanation's fields of a result row (:data:`sedc.base.schema.EXPLANATION_FIELDS`):
        JSON-safe, no arrays."""
        return {key: _plain(getattr(self, attribute)) for key, (attribute, _) in EXPLANATION_FIELDS.items()}

    @property
    def segments(self) -> list[int]:
        """Deprecated name of :attr:`removed`."""
        renamed_attribute("Explanation", "segments", "removed")
        return self.removed

    def as_tuple(self) -> tuple[np.ndarray, list[int], torch.Tensor, int, int]:
        """The seed API's 5-tuple.

        Returns
        -------
        (explanation, segments_in_explanation, perturbation, new_class, predicted_class_index)
        """
        return (self.explanation_image, list(self.removed), self.perturbed_image,
                int(self.new_class), int(self.original_class))

    def plot(self, class_names: Sequence[str] | None = None, path: Any = None, **kwargs: Any):
        """Draw original | highlighted regions | counterfactual; see :func:`sedc.plot`."""
        from ..display.figure import plot

        return plot(self, class_names, path=path, **kwargs)


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a field: Python ints, floats and lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value
