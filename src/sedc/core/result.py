"""What a search returns: :class:`Explanation`.

It sits above :mod:`sedc.display`, which draws it (``Explanation.plot``, and inline in Jupyter:
``_repr_png_``, ``_repr_html_``), and below the engine that makes it; the JSON form of a result
(``to_dict``) follows :mod:`sedc.base.schema`.
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
    class_names : list of str or None
        Names of the classifier's classes, attached when the classifier was a
        :class:`sedc.models.LoadedModel`; :meth:`plot` and the notebook display use them when no
        names are passed. Not part of :meth:`to_dict`, the repr or equality.

    Notes
    -----
    In Jupyter an explanation shows itself: ``_repr_png_`` is the figure of :meth:`plot`
    (rendered once, then cached; the cache is not a field and is not pickled), and
    ``_repr_html_`` a card with the figure and the numbers (:func:`sedc.display.notebook.card_html`).
    The card also lists every key of :meth:`to_dict` beyond the schema's explanation fields, so
    results that later join the row (trust checks, for instance) appear there without a change
    to the card.
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
    class_names: list[str] | None = field(default=None, repr=False, compare=False)

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

    def _repr_png_(self) -> bytes:
        """The figure of :meth:`plot` as PNG bytes, for Jupyter (rendered once, then cached)."""
        return self._png(self.class_names)

    def _repr_html_(self) -> str:
        """A compact card for Jupyter: the figure, the classes, the cost and the stop reason."""
        from ..display.notebook import card_html

        return card_html(self, self.class_names, self._png(self.class_names))

    def _png(self, class_names: Sequence[str] | None) -> bytes:
        """The figure as PNG bytes with ``class_names``; the last rendering is kept.

        The cache lives in the instance's ``__dict__`` under ``_png_cache``, outside the
        dataclass fields: equality, :meth:`to_dict` and :func:`dataclasses.fields` never see it,
        and :meth:`__getstate__` leaves it out of pickles.
        """
        from ..display.figure import figure_png

        key = None if class_names is None else tuple(class_names)
        cached = self.__dict__.get(_PNG_CACHE)
        if cached is None or cached[0] != key:
            cached = (key, figure_png(self, class_names))
            self.__dict__[_PNG_CACHE] = cached
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        """The fields, without the rendered figure (workers and caches pickle only the result)."""
        return {name: value for name, value in self.__dict__.items() if name != _PNG_CACHE}


_PNG_CACHE = "_png_cache"


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
