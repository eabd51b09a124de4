"""A model's own preprocessing: resize and centre crop once, normalise inside the module.

A classifier from timm, torchvision or Hugging Face was trained on images that were resized,
centre-cropped, scaled and normalised in a particular way. SEDC splits that pipeline in two:

* the **geometry** (resize, crop) is applied once to the photo, and the search runs on the
  resulting image: the image the model sees, which is also the one the figures show;
* the **normalisation** (rescale, ``(x - mean) / std``) is built into the module
  (:class:`~sedc.models.base.Normalized`), so the search can feed it [0, 1] RGB images.

:class:`Preprocessing` holds both halves as plain data (it pickles to worker processes and needs
none of the libraries at run time). :func:`from_hf`, :func:`from_timm` and
:func:`from_torchvision` read it off the libraries' own settings, and :func:`check_matches`
compares the result with the library's own pipeline on a probe image, so that a setting sedc
does not understand fails loudly instead of giving a slightly different image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..base.errors import InputError

__all__ = ["INTERPOLATIONS", "Preprocessing", "check_matches", "from_hf", "from_timm",
           "from_torchvision", "probe_image"]

#: Resampling filters by name (the names timm and torchvision use), as Pillow filters.
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
}
_PIL_CODES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_CHECK_TOLERANCE = 1e-3  # normalised units; one grey level is about 0.017 at std 0.229


@dataclass(frozen=True)
class Preprocessing:
    """How images are prepared for one model.

    Parameters
    ----------
    resize : int, (height, width) or None
        An int resizes the shorter edge to that length, keeping the aspect ratio (the longer
        edge is truncated to an int, as torchvision and Hugging Face do); a pair resizes to
        exactly that size; None keeps the size.
    crop : (height, width) or None
        Centre crop after resizing; an image smaller than the crop is padded with black.
    interpolation : str
        Resampling filter, one of :data:`INTERPOLATIONS`.
    crop_rounding : {"round", "floor"}
        Where an odd margin goes: torchvision and timm round half the margin
        (``round((H - h) / 2)``), Hugging Face floors it.
    mean, std : tuple of float or None
        Per-channel normalisation applied inside the module.
    scale : float, default 1.0
        Factor applied to [0, 1] pixels before the normalisation (Hugging Face processors whose
        ``rescale_factor`` is not 1/255).
    """

    resize: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    interpolation: str = "bilinear"
    crop_rounding: str = "round"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation must be one of {sorted(INTERPOLATIONS)}; "
                             f"got {self.interpolation!r}")
        if self.crop_rounding not in ("round", "floor"):
            raise InputError(f"crop_rounding must be 'round' or 'floor'; got {self.crop_rounding!r}")

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) of every prepared image, or None when it follows the photo's shape."""
        if self.crop is not None:
            return tuple(self.crop)
        if isinstance(self.resize, tuple):
            return tuple(self.resize)
        return None

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of a ``height`` x ``width`` image after the resize step."""
        if self.resize is None:
            return height, width
        if isinstance(self.resize, tuple):
            return int(self.resize[0]), int(self.resize[1])
        short, long = sorted((height, width))
        new_long = int(self.resize * long / short)
        return (self.resize, new_long) if height <= width else (new_long, self.resize)

    def geometry(self, image: Image.Image) -> Image.Image:
        """Resize and crop a Pillow image (any mode Pillow resizes: RGB, or F for floats)."""
        size = self.resized_size(image.height, image.width)
        if size != (image.height, image.width):
            image = image.resize((size[1], size[0]), INTERPOLATIONS[self.interpolation])
        if self.crop is not None:
            image = _center_crop(image, self.crop, self.crop_rounding)
        return image

    def prepare(self, image: Any) -> np.ndarray:
        """The image the model sees, as float32 (H, W, 3) RGB in [0, 1].

        Parameters
        ----------
        image : PIL.Image.Image, numpy.ndarray or torch.Tensor
            A Pillow image; an (H, W, 3) or (H, W) array, uint8 or float in [0, 1]; or a
            (3, H, W) / (1, 3, H, W) float tensor in [0, 1]. 8-bit images (and float images
            holding 8-bit values) are resized exactly as the libraries resize them; other float
            images are resized per channel in floating point.

        Returns
        -------
        numpy.ndarray
        """
        pixels = _as_hwc(image)
        if pixels.dtype == np.uint8:
            out = self.geometry(Image.fromarray(pixels, "RGB"))
            return np.asarray(out, dtype=np.float32) / np.float32(255.0)
        channels = [np.asarray(self.geometry(Image.fromarray(pixels[:, :, c], "F")))
                    for c in range(3)]
        return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Apply ``scale`` and ``(x - mean) / std`` to a (B, 3, H, W) batch in [0, 1]."""
        if self.scale != 1.0:
            batch = batch * self.scale
        if self.mean is not None:
            mean = torch.tensor(self.mean, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
            batch = (batch - mean) / std
        return batch

    def describe(self) -> str:
        """One line: ``resize 256 (shorter edge, bilinear), centre crop 224x224, mean ..., std ...``."""
        parts = []
        if isinstance(self.resize, int):
            parts.append(f"resize shorter edge to {self.resize} ({self.interpolation})")
        elif self.resize is not None:
            parts.append(f"resize to {self.resize[0]}x{self.resize[1]} ({self.interpolation})")
        if self.crop is not None:
            parts.append(f"centre crop {self.crop[0]}x{self.crop[1]}")
        if self.scale != 1.0:
            parts.append(f"scale {self.scale:g}")
        if self.mean is not None:
            parts.append(f"mean {_fmt(self.mean)}, std {_fmt(self.std)}")
        return ", ".join(parts) or "as is"


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _as_hwc(image: Any) -> np.ndarray:
    """uint8 (H, W, 3), or float32 (H, W, 3) in [0, 1] when the values are not 8-bit."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        tensor = tensor[0] if tensor.ndim == 4 and tensor.shape[0] == 1 else tensor
        if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
            raise InputError(f"image tensor must be (3, H, W) or (1, 3, H, W); got {tuple(image.shape)}")
        image = tensor.permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise InputError(f"image must be (H, W), (H, W, 3) or (3, H, W); got shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise InputError("a float image must hold values in [0, 1]")
    levels = array * np.float32(255.0)
    if np.allclose(levels, np.round(levels), atol=1e-3, rtol=0.0):
        return np.round(levels).astype(np.uint8)
    return np.ascontiguousarray(array)


def _center_crop(image: Image.Image, size: tuple[int, int], rounding: str) -> Image.Image:
    height, width = size
    if height > image.height or width > image.width:
        image = _pad(image, max(height, image.height), max(width, image.width), rounding)
    top, left = _offset(image.height - height, rounding), _offset(image.width - width, rounding)
    return image.crop((left, top, left + width, top + height))


def _offset(margin: int, rounding: str) -> int:
    return int(round(margin / 2.0)) if rounding == "round" else margin // 2


def _pad(image: Image.Image, height: int, width: int, rounding: str) -> Image.Image:
    """Centre ``image`` on a black canvas (torchvision puts the odd pixel right, HF left)."""
    before = (lambda d: d // 2) if rounding == "round" else (lambda d: math.ceil(d / 2))
    canvas = Image.new(image.mode, (width, height))
    canvas.paste(image, (before(width - image.width), before(height - image.height)))
    return canvas


# --------------------------------------------------------------------------------------------
# The libraries' settings
# --------------------------------------------------------------------------------------------

def from_hf(processor: Any) -> Preprocessing:
    """Read a Hugging Face image processor's settings (``AutoImageProcessor``).

    Handles ``size`` as ``{"height", "width"}`` (exact resize) or ``{"shortest_edge"}``, the
    ConvNeXT rule (``crop_pct``: below 384 resize the shorter edge to ``size / crop_pct`` and crop
    ``size``; from 384 warp to ``size``), ``do_center_crop``/``crop_size``, ``resample``,
    ``do_rescale``/``rescale_factor`` and ``do_normalize``/``image_mean``/``image_std``.

    Raises
    ------
    ValueError
        For settings outside these (check the result with :func:`check_matches`).
    """
    get = lambda name, default=None: getattr(processor, name, default)  # noqa: E731
    name = type(processor).__name__
    resize, crop = _hf_resize(processor, name) if get("do_resize", True) else (None, None)
    if get("do_center_crop", False):
        crop_size = dict(get("crop_size") or {})
        if "height" not in crop_size or "width" not in crop_size:
            raise InputError(f"{name}: unsupported crop_size {crop_size}")
        crop = (int(crop_size["height"]), int(crop_size["width"]))
    mean = std = None
    if get("do_normalize", True):
        mean, std = _triple(get("image_mean")), _triple(get("image_std"))
    factor = float(get("rescale_factor", 1 / 255)) if get("do_rescale", True) else 1.0
    return Preprocessing(resize, crop, _hf_interpolation(get("resample", 2)), "floor", mean, std,
                         scale=factor * 255.0)


def _hf_resize(processor: Any, name: str) -> tuple[Any, tuple[int, int] | None]:
    size = dict(getattr(processor, "size", None) or {})
    size = {k: v for k, v in size.items() if v is not None}
    if set(size) == {"height", "width"}:
        return (int(size["height"]), int(size["width"])), None
    if set(size) == {"shortest_edge"}:
        edge = int(size["shortest_edge"])
        crop_pct = getattr(processor, "crop_pct", None)
        if name.startswith("ConvNext") and crop_pct is not None:
            return ((int(edge / crop_pct), (edge, edge)) if edge < 384 else ((edge, edge), None))
        return edge, None
    raise InputError(f"{name}: unsupported size {size}; sedc understands {{'height', 'width'}} "
                     "and {'shortest_edge'}")


def _hf_interpolation(resample: Any) -> str:
    if isinstance(resample, str):
        return resample.lower()
    value = getattr(resample, "value", resample)
    if isinstance(value, str):  # torchvision InterpolationMode
        return value.lower()
    return _PIL_CODES.get(int(value), "bilinear")


def _triple(value: Any) -> tuple[float, ...]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * 3
    return tuple(float(v) for v in values)


def from_timm(config: dict) -> Preprocessing:
    """Read timm's data config (``timm.data.resolve_model_data_config(model)``).

    Reproduces ``timm.data.create_transform(**config)`` for evaluation: ``crop_mode="center"``
    (square inputs: resize the shorter edge to ``floor(size / crop_pct)``, then centre crop) and
    ``"squash"`` (resize to ``floor(size / crop_pct)`` in both directions, then crop).

    Raises
    ------
    ValueError
        For another crop mode, or a non-square input with ``crop_mode="center"`` (timm resizes
        those with its own rule).
    """
    height, width = (int(v) for v in config["input_size"][-2:])
    crop_pct = float(config.get("crop_pct") or 0.875)
    mode = config.get("crop_mode") or "center"
    scaled = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    if mode == "squash":
        resize: Any = scaled
    elif mode == "center" and scaled[0] == scaled[1]:
        resize = scaled[0]
    else:
        raise InputError(f"timm crop_mode {mode!r} with input size {height}x{width} is not "
                         "supported; use the Python API with your own preprocessing")
    return Preprocessing(resize, (height, width), str(config.get("interpolation", "bilinear")),
                         "round", _triple(config["mean"]), _triple(config["std"]))


def from_torchvision(transform: Any) -> Preprocessing:
    """Read a torchvision weights' preset (``weights.transforms()``, ``ImageClassification``)."""
    resize = _attr(transform, "resize_size")
    crop = _attr(transform, "crop_size")
    interpolation = _attr(transform, "interpolation")
    mode = getattr(interpolation, "value", interpolation)
    resize_to: Any = None
    if resize is not None:
        resize = [int(v) for v in resize]
        resize_to = resize[0] if len(resize) == 1 else (resize[0], resize[1])
    crop_to = None
    if crop is not None:
        crop = [int(v) for v in crop]
        crop_to = (crop[0], crop[0]) if len(crop) == 1 else (crop[0], crop[1])
    return Preprocessing(resize_to, crop_to, str(mode).lower(), "round",
                         _triple(_attr(transform, "mean")), _triple(_attr(transform, "std")))


def _attr(transform: Any, name: str) -> Any:
    """A preset's setting: public in recent torchvision (``crop_size``), private before."""
    private = {"resize_size": "_size"}.get(name, f"_{name}")
    for key in (name, private):
        if hasattr(transform, key):
            return getattr(transform, key)
    raise InputError(f"{type(transform).__name__} has no {name}; it is not an image "
                     "classification preset")


# --------------------------------------------------------------------------------------------
# Checking against the library
# --------------------------------------------------------------------------------------------

def probe_image(height: int = 251, width: int = 343, seed: int = 0) -> Image.Image:
    """A deterministic non-square test photo: smooth gradients plus noise, 8-bit RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=2) * 200.0
    pixels = np.clip(base + rng.normal(0.0, 25.0, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def check_matches(preprocessing: Preprocessing, reference: Callable[[Image.Image], Any],
                  source: str) -> None:
    """Compare ``preprocessing`` with a library's own pipeline on two probe images.

    Parameters
    ----------
    preprocessing : Preprocessing
    reference : callable
        PIL image -> normalised (3, H, W) or (1, 3, H, W) tensor or array (the library's).
    source : str
        Names the model in the error message.

    Raises
    ------
    ValueError
        When the shapes differ or a value differs by more than ``1e-3``.
    """
    for probe in (probe_image(), probe_image(301, 211, seed=1)):
        expected = torch.as_tensor(np.asarray(reference(probe)), dtype=torch.float32)
        expected = expected[0] if expected.ndim == 4 else expected
        ours = torch.from_numpy(preprocessing.prepare(probe)).permute(2, 0, 1)[None]
        ours = preprocessing.normalize(ours)[0]
        if tuple(ours.shape) != tuple(expected.shape):
            raise InputError(f"{source}: sedc's preprocessing gives {tuple(ours.shape)} images but "
                             f"the model's own gives {tuple(expected.shape)}; use the Python API "
                             "with your own preprocessing")
        worst = float((ours - expected).abs().max())
        if worst > _CHECK_TOLERANCE:
            raise InputError(f"{source}: sedc's preprocessing ({preprocessing.describe()}) differs "
                             f"from the model's own by up to {worst:.3g}; use the Python API with "
                             "your own preprocessing")
