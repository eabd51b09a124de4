"""What a search returns: :class:`Explanation`, with what the checks after it found
(:class:`CheckResults`).

It sits above :mod:`sedc.display`, which draws it (``Explanation.plot``, and inline in Jupyter:
``_repr_png_``, ``_repr_html_``), and below the engine that makes it; the JSON form of a result
(``to_dict``) follows :mod:`sedc.base.schema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..base.deprecated import renamed_attribute
from ..base.schema import EXPLANATION_FIELDS, fills_summary

# --------------------------------------------------------------------------------------------
# What the checks after the search found (computed by sedc.core.checks)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyCheck:
    """The counterfactual evaluated alone: a batch of one, without autocast.

    ``verified``: the fresh prediction is the reported ``new_class`` and still a counterfactual.
    """

    verified: bool
    new_class: int
    new_score: float


@dataclass(frozen=True)
class FillCheck:
    """The removed regions under another fill: ``holds`` when still a counterfactual."""

    fill: str
    holds: bool
    new_class: int


@dataclass(frozen=True)
class MinimalCheck:
    """Whether no single region can be dropped (``irreducible``), and those that can."""

    irreducible: bool
    droppable: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelCheck:
    """The perturbed image shown to a second model.

    ``original_class`` is that model's prediction on the unperturbed image, ``new_class`` on the
    perturbed one; ``transfers``: it leaves its original class (SEDC) or predicts the target
    (SEDC-T, the target read in its classes).
    """

    model: str
    original_class: int
    new_class: int
    transfers: bool


@dataclass(frozen=True)
class CheckResults:
    """Every check of one explanation; a part is None when its check did not run (or nothing was
    found to check)."""

    verify: VerifyCheck | None = None
    fills: tuple[FillCheck, ...] | None = None
    minimal: MinimalCheck | None = None
    models: tuple[ModelCheck, ...] | None = None

    @property
    def verified(self) -> bool | None:
        return None if self.verify is None else self.verify.verified

    @property
    def verified_class(self) -> int | None:
        return None if self.verify is None else self.verify.new_class

    @property
    def verified_score(self) -> float | None:
        return None if self.verify is None else self.verify.new_score

    @property
    def fill_outcomes(self) -> dict[str, dict[str, Any]] | None:
        """``{fill: {"holds": bool, "new_class": int}}`` (the row's ``fills``)."""
        if self.fills is None:
            return None
        return {f.fill: {"holds": f.holds, "new_class": f.new_class} for f in self.fills}

    @property
    def holds_under_every_fill(self) -> bool | None:
        return None if self.fills is None else all(f.holds for f in self.fills)

    @property
    def irreducible(self) -> bool | None:
        return None if self.minimal is None else self.minimal.irreducible

    @property
    def droppable(self) -> list[int] | None:
        return None if self.minimal is None else list(self.minimal.droppable)

    @property
    def model_outcomes(self) -> list[dict[str, Any]] | None:
        """One ``{"model", "original_class", "new_class", "transfers"}`` per second model."""
        if self.models is None:
            return None
        return [{"model": m.model, "original_class": m.original_class, "new_class": m.new_class,
                 "transfers": m.transfers} for m in self.models]

    @property
    def transfers(self) -> bool | None:
        return None if self.models is None else all(m.transfers for m in self.models)

    def summary(self, name: Callable[[int], str] = str) -> str:
        """The checks in words, for captions: ``"holds under blur, mean; not under harmonic"``.

        ``name`` turns a class id into its name (the first model's classes).
        """
        parts = []
        if self.verified is False:
            parts.append(f"not verified: alone it is {name(self.verified_class)}")
        if self.fills is not None:
            parts.append(fills_summary(self.fill_outcomes) or "")
        if self.minimal is not None and not self.minimal.irreducible:
            parts.append(f"reducible (region{'s' * (len(self.minimal.droppable) > 1)} "
                         f"{', '.join(map(str, self.minimal.droppable))} can be dropped)")
        if self.models is not None:
            parts.append(f"transfers to {sum(m.transfers for m in self.models)} of {len(self.models)} "
                         f"other model{'s' * (len(self.models) > 1)}")
        return "; ".join(p for p in parts if p)


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
    checks : CheckResults
        What the checks after the search found (``options.checks``, ``check_models``; see
        :mod:`sedc.core.checks`); each part is None when its check did not run.
    n_check_evaluations : int
        Model evaluations of the checks, not counted in ``n_evaluations``.
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
    search : str
        The search strategy that ran: ``"exact"``, ``"fast"`` or ``"beam(W)"`` with its width.
    n_model_calls : int
        Model batches the search was fed from, the unperturbed image's included (with
        ``explain_many``, a batch shared by several images counts once for each).
    batch_size : int
        Candidates per model call when the search ended: the ``batch_size`` given, or the size
        ``batch_size="auto"`` settled on (while it was still measuring, the size it was
        measuring). With ``explain_many`` the batches are shared by the images explained at once.
        It depends on the machine's speed, so it can differ between runs; the answer does not.
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
    # -- the checks after the search (core/checks.py) --
    checks: CheckResults = field(default_factory=CheckResults)
    n_check_evaluations: int = 0
    class_names: list[str] | None = field(default=None, repr=False, compare=False)
    search: str = "exact"
    n_model_calls: int = 0
    batch_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The explanation's fields of a result row (:data:`sedc.base.schema.EXPLANATION_FIELDS`):
        JSON-safe, no arrays."""
        return {key: _plain(attrgetter(attribute)(self)) for key, (attribute, _) in EXPLANATION_FIELDS.items()}

    @property
    def area(self) -> float:
        """Fraction of the image's pixels removed (0 when nothing was found): always known, free."""
        return float(np.asarray(self.mask).mean()) if np.asarray(self.mask).size else 0.0

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
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value

