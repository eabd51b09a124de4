"""Superpixel segmentation of the image to explain, modelled on :mod:`skimage.segmentation`.

One function per algorithm (:func:`quickshift`, :func:`slic`, :func:`felzenszwalb`, :func:`grid`)
and a dispatcher, :func:`segment`. All take any image that :func:`sedc._inputs.as_image_tensor`
accepts and return an int64, C-contiguous (H, W) label map numbered 0..N-1.

SEDC's default is quickshift with ``kernel_size=4, max_dist=200, ratio=0.2``.
"""

from __future__ import annotations

import inspect
import math
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..base.errors import InputError, InputTypeError
from ..base.validate import as_image_tensor

METHODS = ("quickshift", "slic", "felzenszwalb", "grid")

DEFAULT_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "quickshift": MappingProxyType({"kernel_size": 4, "max_dist": 200, "ratio": 0.2, "sigma": 0.0, "seed": 42}),
    "slic": MappingProxyType({"n_segments": 50, "compactness": 10.0, "sigma": 1.0, "max_num_iter": 10}),
    "felzenszwalb": MappingProxyType({"scale": 100.0, "sigma": 0.5, "min_size": 50}),
    "grid": MappingProxyType({"n_segments": 49, "rows": None, "cols": None}),
})
"""Each method's parameters and their defaults (read-only)."""

_GRANULARITY = {
    "quickshift": "kernel_size and max_dist (larger values give fewer, bigger segments)",
    "felzenszwalb": "scale (larger gives fewer, bigger segments) and min_size",
}
_TOLERANCE = 1e-6  # float32 rounding allowed around [0, 1]


def segment(image: Any, method: str = "quickshift", **params: Any) -> np.ndarray:
    """Segment an image into superpixels with the named method.

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        A (C, H, W) or (1, C, H, W) tensor, an (H, W, C) or (H, W) array (uint8, or float in
        [0, 1]) or a PIL image. All methods but ``'grid'`` need values in [0, 1] (a displayable
        image, not a normalised one) and 1, 3 or 4 channels.
    method : {'quickshift', 'slic', 'felzenszwalb', 'grid'}, optional
        The algorithm; default ``'quickshift'`` (SEDC's choice).
    **params
        Parameters of that method (see :data:`DEFAULT_PARAMS` and the method's function);
        unspecified ones keep their defaults. ``n_segments`` sets the granularity of ``'slic'``
        and ``'grid'``.

    Returns
    -------
    numpy.ndarray
        (H, W) int64 C-contiguous labels, numbered consecutively from 0.

    Raises
    ------
    ValueError
        For an unknown method, an invalid parameter value, or an image the method cannot
        segment.
    TypeError
        For a parameter the method does not take, a parameter of the wrong type, or an
        unsupported image type.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((32, 48, 3))
    >>> int(segment(image, "grid", rows=2, cols=3).max())
    5
    """
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"unknown segmentation method {method!r}; choose one of {', '.join(METHODS)}")
    for name in params:
        if name not in DEFAULT_PARAMS[method]:
            raise InputTypeError(_unknown_parameter(method, name))
    return _FUNCTIONS[method](image, **params)


def quickshift(image: Any, *, kernel_size: float = 4, max_dist: float = 200, ratio: float = 0.2,
               sigma: float = 0.0, seed: int | None = 42) -> np.ndarray:
    """Quickshift mode-seeking segmentation (:func:`skimage.segmentation.quickshift`).

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        Image with values in [0, 1] (see :func:`segment`).
    kernel_size : float, optional
        Width of the Gaussian kernel estimating the density (> 0). Larger: fewer segments.
    max_dist : float, optional
        Cut-off distance of the data (> 0). Larger: fewer segments.
    ratio : float, optional
        Balance between colour (1) and position (0), in [0, 1].
    sigma : float, optional
        Gaussian pre-smoothing (>= 0; 0 for none).
    seed : int or None, optional
        Seed breaking ties between equal densities; an int makes the result deterministic.

    Returns
    -------
    numpy.ndarray
        (H, W) int64 labels 0..N-1.
    """
    from skimage import segmentation as skseg

    _check_real("quickshift", "kernel_size", kernel_size, low=0.0)
    _check_real("quickshift", "max_dist", max_dist, low=0.0)
    _check_real("quickshift", "ratio", ratio, low=0.0, high=1.0, inclusive=True)
    _check_real("quickshift", "sigma", sigma, low=0.0, inclusive=True)
    _check_seed(seed)
    rgb = _rgb_array(image, "quickshift")
    labels = skseg.quickshift(rgb, kernel_size=kernel_size, max_dist=max_dist, ratio=ratio, sigma=sigma,
                              **_seed_argument(skseg.quickshift, seed))
    return _sequential(labels)


def slic(image: Any, *, n_segments: int = 50, compactness: float = 10.0, sigma: float = 1.0,
         max_num_iter: int = 10) -> np.ndarray:
    """SLIC superpixels, k-means in colour and position (:func:`skimage.segmentation.slic`).

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        Image with values in [0, 1] (see :func:`segment`).
    n_segments : int, optional
        Approximate number of segments (>= 1).
    compactness : float, optional
        Balance of colour and position (> 0); larger gives more square segments.
    sigma : float, optional
        Gaussian pre-smoothing (>= 0).
    max_num_iter : int, optional
        Maximum k-means iterations (>= 1).

    Returns
    -------
    numpy.ndarray
        (H, W) int64 labels 0..N-1.
    """
    from skimage import segmentation as skseg

    _check_integer("slic", "n_segments", n_segments, low=1)
    _check_real("slic", "compactness", compactness, low=0.0)
    _check_real("slic", "sigma", sigma, low=0.0, inclusive=True)
    _check_integer("slic", "max_num_iter", max_num_iter, low=1)
    rgb = _rgb_array(image, "slic")
    labels = skseg.slic(rgb, n_segments=n_segments, compactness=compactness, sigma=sigma,
                        max_num_iter=max_num_iter, start_label=0, channel_axis=-1)
    return _sequential(labels)


def felzenszwalb(image: Any, *, scale: float = 100.0, sigma: float = 0.5, min_size: int = 50) -> np.ndarray:
    """Felzenszwalb's graph-based segmentation (:func:`skimage.segmentation.felzenszwalb`).

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        Image with values in [0, 1] (see :func:`segment`).
    scale : float, optional
        Observation scale (> 0). Larger: fewer, bigger segments.
    sigma : float, optional
        Gaussian pre-smoothing (>= 0).
    min_size : int, optional
        Minimum segment size in pixels (>= 0), enforced by merging.

    Returns
    -------
    numpy.ndarray
        (H, W) int64 labels 0..N-1.
    """
    from skimage import segmentation as skseg

    _check_real("felzenszwalb", "scale", scale, low=0.0)
    _check_real("felzenszwalb", "sigma", sigma, low=0.0, inclusive=True)
    _check_integer("felzenszwalb", "min_size", min_size, low=0)
    rgb = _rgb_array(image, "felzenszwalb")
    labels = skseg.felzenszwalb(rgb, scale=scale, sigma=sigma, min_size=min_size, channel_axis=-1)
    return _sequential(labels)


def grid(image: Any, *, n_segments: int | None = None, rows: int | None = None,
         cols: int | None = None) -> np.ndarray:
    """Split the image into a grid of rectangular cells, numbered row by row.

    Works on any image (any channel count and value range): only its size is used.

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        The image (see :func:`segment`).
    n_segments : int or None, optional
        Approximate number of cells (>= 1); the grid is chosen so that ``rows * cols`` is as
        close as possible with near-square cells. None: 49, unless ``rows`` and ``cols`` are both
        given. When one of ``rows`` / ``cols`` is given, the other is ``round(n_segments / it)``.
    rows, cols : int or None, optional
        Exact number of cell rows / columns (>= 1, at most the image's height / width).

    Returns
    -------
    numpy.ndarray
        (H, W) int64 labels 0..rows*cols-1; every cell is a contiguous rectangle.
    """
    height, width = as_image_tensor(image).shape[-2:]
    for name, value, limit in (("rows", rows, height), ("cols", cols, width)):
        if value is not None:
            _check_integer("grid", name, value, low=1)
            if value > limit:
                side = "height" if name == "rows" else "width"
                raise InputError(f"grid: {name}={value} exceeds the image {side} of {limit} pixels; "
                                 f"use at most one {name[:-1]} per pixel")
    if n_segments is not None:
        _check_integer("grid", "n_segments", n_segments, low=1)
        if rows is not None and cols is not None and rows * cols != n_segments:
            raise InputError(f"grid: rows={rows} x cols={cols} makes {rows * cols} cells, not "
                             f"n_segments={n_segments}; pass n_segments, or rows and cols")
    rows, cols = _grid_shape(height, width, DEFAULT_PARAMS["grid"]["n_segments"] if n_segments is None
                             else n_segments, rows, cols)
    row_index = np.arange(height, dtype=np.int64) * rows // height
    col_index = np.arange(width, dtype=np.int64) * cols // width
    return np.ascontiguousarray(row_index[:, None] * cols + col_index[None, :])


def _grid_shape(height: int, width: int, n_segments: int, rows: int | None,
                cols: int | None) -> tuple[int, int]:
    """Rows and columns of the grid: given ones kept, missing ones chosen from ``n_segments``."""
    if rows is not None and cols is not None:
        return rows, cols
    if rows is not None:
        return rows, min(max(1, round(n_segments / rows)), width)
    if cols is not None:
        return min(max(1, round(n_segments / cols)), height), cols
    guess = round(math.sqrt(n_segments * height / width))
    candidates = []
    for r in {guess - 1, guess, guess + 1}:
        r = min(max(r, 1), height)
        c = min(max(1, round(n_segments / r)), width)
        squareness = abs(math.log((height / r) / (width / c)))
        candidates.append((abs(r * c - n_segments), squareness, r, c))
    _, _, rows, cols = min(candidates)
    return rows, cols


def _rgb_array(image: Any, method: str) -> np.ndarray:
    """The image as a float64 (H, W, 3) array in [0, 1], as scikit-image wants it."""
    tensor = as_image_tensor(image)[0].detach().to("cpu", torch.float64)
    channels = tensor.shape[0]
    if channels not in (1, 3, 4):
        raise InputError(f"{method} needs a grayscale (1), RGB (3) or RGBA (4) image; got {channels} channels "
                         "(method='grid' works with any number of channels)")
    low, high = float(tensor.min()), float(tensor.max())
    if low < -_TOLERANCE or high > 1 + _TOLERANCE:
        raise InputError(f"{method} segments a displayable image with values in [0, 1]; got values in "
                         f"[{low:.4g}, {high:.4g}]. Pass the image before normalisation (e.g. before "
                         "transforms.Normalize), or use method='grid', which works on any values")
    rgb = tensor[:3] if channels == 4 else tensor.expand(3, -1, -1) if channels == 1 else tensor
    return np.ascontiguousarray(rgb.clamp(0.0, 1.0).permute(1, 2, 0).numpy())


def _sequential(labels: np.ndarray) -> np.ndarray:
    """Relabel to consecutive 0..N-1, int64, C-contiguous."""
    from skimage.segmentation import relabel_sequential

    labels = np.asarray(labels, dtype=np.int64)
    relabelled, _, _ = relabel_sequential(labels - labels.min() + 1)  # label 0 would stay 0: start at 1
    return np.ascontiguousarray(relabelled - 1, dtype=np.int64)


def _seed_argument(function: Callable[..., Any], seed: int | None) -> dict[str, Any]:
    """The tie-breaking seed under the name this scikit-image version uses (rng, or random_seed)."""
    accepted = inspect.signature(function).parameters
    if "rng" in accepted:
        return {"rng": seed}
    if "random_seed" in accepted:
        return {"random_seed": 42 if seed is None else seed}
    return {}


def _unknown_parameter(method: str, name: str) -> str:
    accepted = ", ".join(DEFAULT_PARAMS[method])
    if name == "n_segments" and method in _GRANULARITY:
        return (f"{method} does not take n_segments; its granularity is controlled by "
                f"{_GRANULARITY[method]}. {method} accepts: {accepted}")
    return f"unknown parameter {name!r} for method {method!r}; {method} accepts: {accepted}"


def _check_real(method: str, name: str, value: Any, *, low: float, high: float | None = None,
                inclusive: bool = False) -> None:
    """Check ``low < value`` (``<=`` if ``inclusive``) and ``value <= high``."""
    allowed = _range_text(low, high, inclusive, "number")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputTypeError(f"{method}: {name} must be a {allowed}; got {value!r}")
    too_low = value < low if inclusive else value <= low
    if not math.isfinite(value) or too_low or (high is not None and value > high):
        raise InputError(f"{method}: {name} must be a {allowed}; got {value!r}")


def _check_integer(method: str, name: str, value: Any, *, low: int) -> None:
    allowed = f"integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputTypeError(f"{method}: {name} must be an {allowed}; got {value!r}")
    if value < low:
        raise InputError(f"{method}: {name} must be an {allowed}; got {value!r}")


def _check_seed(seed: Any) -> None:
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise InputTypeError(f"quickshift: seed must be a non-negative integer or None; got {seed!r}")
    if seed < 0:
        raise InputError(f"quickshift: seed must be a non-negative integer or None; got {seed!r}")


def _range_text(low: float, high: float | None, inclusive: bool, kind: str) -> str:
    if high is not None:
        return f"{kind} in [{low:g}, {high:g}]"
    return f"{kind} >= {low:g}" if inclusive else f"{kind} > {low:g}"


_FUNCTIONS: Mapping[str, Callable[..., np.ndarray]] = MappingProxyType({
    "quickshift": quickshift, "slic": slic, "felzenszwalb": felzenszwalb, "grid": grid,
})
