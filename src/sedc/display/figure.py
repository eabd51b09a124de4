"""The explanation figure: original | removed regions | counterfactual.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never pyplot, so
plotting is thread-safe, needs no display and leaves no global state. In Jupyter an explanation
shows this figure itself (``Explanation._repr_png_``, from :func:`figure_png`).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage.segmentation import mark_boundaries

from ..base.deprecated import renamed_argument
from ..base.errors import InputError, InputTypeError
from ..models.labels import class_name

_FIELDS = ("image", "segmentation", "mask", "perturbed_image", "removed", "original_class", "new_class")

__all__ = ["figure_png", "plot", "summary"]

HIGHLIGHT = "#ff9f1c"      # outline and tint of the removed regions
BOUNDARY = (1.0, 1.0, 0.85)  # segment boundaries on the original
TITLE_SIZE = 11
FOOTER_SIZE = 10
PANEL_WIDTH = 4.0          # inches per panel
NOTEBOOK_DPI = 80          # inline figures (Jupyter): 960 pixels wide, about 400 kB of PNG for a photo

STOP_TEXT = {
    "max_time": "time limit reached",
    "max_evals": "evaluation limit reached",
    "exhausted": "search exhausted",
    "found": "found",
}


def plot(explanation: Any, class_names: Sequence[str] | None = None, path: str | Path | None = None,
         *, title: str | None = None, figsize: tuple[float, float] | None = None,
         dpi: int = 120, **renamed: Any) -> Figure:
    """Draw an explanation as three panels.

    1. The original image with the segment boundaries, titled with the predicted class and score.
    2. The removed regions: shown bright with a tinted outline, the rest of the image dimmed.
    3. The counterfactual (the image with the regions removed), titled with its class and score.

    A footer sums up the result in one sentence.

    Parameters
    ----------
    explanation : Explanation
        The result of a search.
    class_names : sequence of str or None
        Class names indexed by class id; None uses the explanation's own ``class_names`` (set when
        it was explained with a :class:`sedc.models.LoadedModel`); without names (or for an id
        past the end) the figure writes ``"class 285"``.
    path : str, pathlib.Path or None
        Also save the figure there (PNG unless the suffix names another matplotlib format).
    title : str or None
        Optional heading above the panels.
    figsize : (width, height) in inches or None
        Default: 4 inches per panel, the height following the image's aspect ratio.
    dpi : int, default 120
        Resolution of the figure and of the saved file.

    Returns
    -------
    matplotlib.figure.Figure
    """
    class_names = renamed_argument(renamed, "labels", "class_names", class_names)
    if renamed:
        raise InputTypeError(f"plot() got unexpected keyword argument(s) {', '.join(sorted(renamed))}")
    check_explanation(explanation)
    class_names = names_of(explanation, class_names)
    if not isinstance(dpi, int) or isinstance(dpi, bool) or dpi < 1:
        raise InputError(f"dpi must be a positive int; got {dpi!r}")
    image = _rgb(explanation.image, "image")
    perturbed = _rgb(explanation.perturbed_image, "perturbed_image")
    segmentation = np.asarray(explanation.segmentation)
    mask = _removed_mask(explanation, image.shape[:2])
    fig = _new_figure(image.shape[:2], figsize, dpi, bool(title))
    axes = fig.subplots(1, 3)
    _draw_original(axes[0], image, segmentation, explanation, class_names)
    _draw_removed(axes[1], image, segmentation, mask, explanation)
    _draw_counterfactual(axes[2], perturbed, explanation, class_names)
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE + 2, fontweight="bold")
    fig.supxlabel(textwrap.fill(summary(explanation, class_names), width=int(13 * fig.get_figwidth())),
                  fontsize=FOOTER_SIZE, color="#333333")
    if path is not None:
        _save(fig, Path(path), dpi)
    return fig


def figure_png(explanation: Any, class_names: Sequence[str] | None = None, dpi: int = NOTEBOOK_DPI
               ) -> bytes:
    """The figure of :func:`plot` as PNG bytes (what Jupyter shows inline).

    Rendered on the Agg canvas of a :class:`~matplotlib.figure.Figure` of its own: no pyplot, no
    window, nothing left registered anywhere.

    Parameters
    ----------
    explanation : Explanation
    class_names : sequence of str or None
        As for :func:`plot`.
    dpi : int
        Resolution of the PNG (default 80: 960 pixels wide).

    Returns
    -------
    bytes
    """
    fig = plot(explanation, class_names, dpi=dpi)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1, facecolor="white")
    return buffer.getvalue()


def check_explanation(explanation: Any) -> None:
    """Refuse anything that does not have an explanation's fields (:class:`~sedc.InputTypeError`)."""
    if not all(hasattr(explanation, name) for name in _FIELDS):
        raise InputTypeError(f"explanation must be a sedc.Explanation; got {type(explanation).__name__}")


def names_of(explanation: Any, class_names: Sequence[str] | None) -> Sequence[str] | None:
    """``class_names`` if given, else the explanation's own (None when it has none)."""
    return class_names if class_names is not None else getattr(explanation, "class_names", None)


def summary(explanation: Any, class_names: Sequence[str] | None = None) -> str:
    """One sentence describing the explanation (the figure's footer).

    Parameters
    ----------
    explanation : Explanation
    class_names : sequence of str or None
        As for :func:`plot` (None: the explanation's own).

    Returns
    -------
    str
        E.g. ``"SEDC (blur): removing 3 of 38 regions changes 'Egyptian cat' (0.79) to 'tabby'
        (0.41) — 57 model evaluations; holds under mean; not under harmonic"`` (the checks'
        findings close it, when checks beyond verify ran or the answer did not verify).
    """
    e = explanation
    class_names = names_of(e, class_names)
    method = "SEDC" if e.target is None else "SEDC-T"
    detail = e.mode if e.target is None else f"{e.mode}, target '{class_name(e.target, class_names)}'"
    head = f"{method} ({detail}): "
    before = f"'{class_name(e.original_class, class_names)}' ({score_text(e.original_score)})"
    evals = f"{e.n_evaluations} model evaluation{'s' if e.n_evaluations != 1 else ''}"
    if not e.found:
        stop = STOP_TEXT.get(e.stop_reason, e.stop_reason)
        return f"{head}no counterfactual found for {before} — {stop} after {evals}"
    after = f"'{class_name(e.new_class, class_names)}' ({score_text(e.new_score)})"
    removed = f"removing {len(e.removed)} of {_regions(e.n_segments)}"
    return f"{head}{removed} changes {before} to {after} — {evals}{_checks_text(e, class_names)}"


def _checks_text(e: Any, class_names: Sequence[str] | None) -> str:
    """``"; holds under blur, mean; not under harmonic"``: what the checks found, if any ran."""
    checks = getattr(e, "checks", None)
    text = checks.summary(lambda k: f"'{class_name(k, class_names)}'") if checks is not None else ""
    return f"; {text}" if text else ""


# --------------------------------------------------------------------------------------------
# Panels
# --------------------------------------------------------------------------------------------

def _draw_original(ax: Axes, image: np.ndarray, segmentation: np.ndarray, e: Any,
                   class_names: Sequence[str] | None) -> None:
    if segmentation.shape == image.shape[:2]:
        marked = mark_boundaries(image, segmentation, color=BOUNDARY, mode="inner")
        image = 0.65 * image + 0.35 * marked
    _show(ax, image, f"Original: {class_name(e.original_class, class_names)} {score_text(e.original_score)}")


def _draw_removed(ax: Axes, image: np.ndarray, segmentation: np.ndarray, mask: np.ndarray,
                  e: Any) -> None:
    tint = np.array(_hex_rgb(HIGHLIGHT))
    gray = image @ np.array([0.299, 0.587, 0.114])
    dimmed = 0.2 + 0.4 * (0.25 * image + 0.75 * gray[..., None])
    bright = 0.85 * image + 0.15 * tint
    shown = np.where(mask[..., None], bright, dimmed)
    n = int(len(e.removed))
    _show(ax, shown, f"Removed: {_regions(n)}" if n else "Removed: nothing")
    if mask.any():
        _outline(ax, segmentation, mask, e.removed)


def _draw_counterfactual(ax: Axes, perturbed: np.ndarray, e: Any,
                         class_names: Sequence[str] | None) -> None:
    if e.found:
        text = f"Counterfactual: {class_name(e.new_class, class_names)} {score_text(e.new_score)}"
    else:
        text = f"No counterfactual found ({e.stop_reason})"
    _show(ax, perturbed, text)


def _outline(ax: Axes, segmentation: np.ndarray, mask: np.ndarray, segments: Sequence[int]) -> None:
    if segmentation.shape == mask.shape and 1 < len(segments) <= 64:
        for label in segments:
            ax.contour(segmentation == label, levels=[0.5], colors=[HIGHLIGHT],
                       linewidths=0.7, alpha=0.55, antialiased=True)
    ax.contour(mask.astype(np.float32), levels=[0.5], colors=[HIGHLIGHT], linewidths=2.0)


def _show(ax: Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(np.clip(image, 0.0, 1.0), interpolation="antialiased")
    ax.set_title(title, fontsize=TITLE_SIZE, pad=6)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _rgb(tensor, name: str) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor/array -> float (H, W, 3) in [0, 1] for display."""
    array = tensor.detach().cpu().float().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise InputError(f"explanation.{name} must have shape (1, C, H, W); got {tuple(array.shape)}")
    channels = array[:3] if array.shape[0] >= 3 else np.repeat(array[:1], 3, axis=0)
    return np.clip(channels.transpose(1, 2, 0).astype(np.float64), 0.0, 1.0)


def _removed_mask(e: Any, shape: tuple[int, int]) -> np.ndarray:
    mask = None if e.mask is None else np.asarray(e.mask, dtype=bool)
    if mask is not None and mask.shape == shape:
        return mask
    segmentation = np.asarray(e.segmentation)
    if segmentation.shape == shape:
        return np.isin(segmentation, list(e.removed))
    raise InputError(f"explanation.mask and explanation.segmentation must have the image's shape "
                     f"{shape}; got {None if mask is None else mask.shape} and {segmentation.shape}")


def _new_figure(shape: tuple[int, int], figsize: tuple[float, float] | None, dpi: int,
                titled: bool) -> Figure:
    if figsize is None:
        height, width = shape
        figsize = (3 * PANEL_WIDTH, PANEL_WIDTH * height / width + 0.55 + 0.3 * titled)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.02)
    return fig


def _save(fig: Figure, path: Path, dpi: int) -> None:
    fmt = path.suffix.lower().lstrip(".")
    fmt = fmt if fmt in fig.canvas.get_supported_filetypes() else "png"
    fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.1, facecolor="white")


def score_text(value: float) -> str:
    """A score as shown: two decimals, or scientific notation below 0.01."""
    value = float(value)
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.1e}"


def _regions(n: int) -> str:
    return f"{n} region{'s' if n != 1 else ''}"


def _hex_rgb(color: str) -> tuple[float, float, float]:
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
