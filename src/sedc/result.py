"""What a search returns: :class:`Explanation`, and :class:`ImageError` for an image that failed.

This module is the bottom layer of the package: it imports nothing of sedc (``Explanation.plot``
reaches :mod:`sedc.visualize` only when called). The error policy of every many-image backend
(one process, worker processes, Ray) is here too, so that all of them fail the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

@dataclass
class Explanation:
    """A counterfactual explanation of one image.

    Attributes
    ----------
    segments : list of int
        Labels of the removed segments, ascending. Empty when nothing was found.
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
        (H, W) integer label map used by the search.
    """

    segments: list[int]
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (no arrays)."""
        return {
            "found": bool(self.found),
            "segments": [int(s) for s in self.segments],
            "original_class": int(self.original_class),
            "original_score": float(self.original_score),
            "new_class": int(self.new_class),
            "new_score": float(self.new_score),
            "original_class_score": float(self.original_class_score),
            "target": None if self.target is None else int(self.target),
            "mode": self.mode,
            "n_evaluations": int(self.n_evaluations),
            "elapsed_s": float(self.elapsed),
            "stop_reason": self.stop_reason,
            "n_segments_total": int(self.n_segments),
        }

    def as_tuple(self) -> tuple[np.ndarray, list[int], torch.Tensor, int, int]:
        """The seed API's 5-tuple.

        Returns
        -------
        (explanation, segments_in_explanation, perturbation, new_class, predicted_class_index)
        """
        return (self.explanation_image, list(self.segments), self.perturbed_image,
                int(self.new_class), int(self.original_class))

    def plot(self, labels: Sequence[str] | None = None, path: Any = None, **kwargs: Any):
        """Draw original | highlighted regions | counterfactual; see :func:`sedc.plot`."""
        from .visualize import plot

        return plot(self, labels=labels, path=path, **kwargs)


ON_ERROR = ("raise", "return")


class ImageError(Exception):
    """An image that could not be explained (load, segmentation, model or worker failure).

    With ``on_error="raise"``, every backend of :func:`sedc.explain_many` raises this type for a
    failed image (the original exception, where there is one in this process, is its
    ``__cause__`` and its ``error``); with ``on_error="return"`` it is yielded in the image's place.

    Attributes
    ----------
    index : int
        Position of the image in the input.
    message : str
        What went wrong, in one line.
    kind : str
        ``"error"``, or ``"worker-died"`` when a worker process or Ray actor died twice holding it.
    error : BaseException or None
        The original exception, when it was raised in this process.
    """

    def __init__(self, index: int, message: str, kind: str = "error",
                 error: BaseException | None = None) -> None:
        super().__init__(index, message, kind)
        self.index, self.message, self.kind, self.error = index, message, kind, error

    def __str__(self) -> str:
        return f"image {self.index}: {self.message}"

    @classmethod
    def from_exception(cls, index: int, err: BaseException) -> "ImageError":
        """An ImageError for ``err`` raised while explaining image ``index``."""
        if isinstance(err, ImageError):
            return err
        text = str(err).strip()
        message = f"{type(err).__name__}: {text}" if text else type(err).__name__
        return cls(index, message, error=err)


def check_on_error(on_error: Any) -> str:
    """Validate ``on_error``: ``"raise"`` or ``"return"``."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
    return on_error


def failed(error: ImageError, on_error: str) -> tuple[int, ImageError]:
    """Apply the error policy: raise ``error`` (``"raise"``) or return ``(index, error)``."""
    if on_error == "raise":
        if error.error is not None:
            raise error from error.error
        raise error
    return error.index, error
