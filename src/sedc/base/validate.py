"""Input checks at the public boundary: images, segment maps, devices and classifiers, in one place.

Every public entry point funnels its arguments through these helpers so that bad input
fails early with a message naming what is wrong and what is allowed.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from .errors import InputError, InputTypeError

IMAGE_LAYOUTS = (
    "a torch tensor of shape (C, H, W) or (1, C, H, W); "
    "a numpy array of shape (H, W, C) or (H, W), float in [0, 1] or uint8; "
    "or a PIL image"
)


def as_image_tensor(image: Any) -> torch.Tensor:
    """Convert a supported image to a float32 (1, C, H, W) tensor (on its own device).

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        See ``IMAGE_LAYOUTS``.

    Returns
    -------
    torch.Tensor
        Float32 tensor of shape (1, C, H, W). Tensors keep their device; arrays land on the CPU.

    Raises
    ------
    TypeError
        For an unsupported type.
    ValueError
        For an unsupported shape, non-finite values, or a float array outside [0, 1].
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        return _array_to_tensor(image)
    if isinstance(image, torch.Tensor):
        return _check_tensor(image)
    raise InputTypeError(f"image must be {IMAGE_LAYOUTS}; got {type(image).__name__}")


def _array_to_tensor(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InputError(f"image has shape {array.shape}; accepted layouts are {IMAGE_LAYOUTS}")
    if array.shape[2] > 4 and array.shape[0] <= 4:
        raise InputError(
            f"image array has shape {array.shape}, which looks channels-first; numpy images "
            f"must be (H, W, C) (use array.transpose(1, 2, 0)); accepted layouts are {IMAGE_LAYOUTS}"
        )
    if array.shape[2] > 4:
        raise InputError(f"image array has {array.shape[2]} channels; numpy images must be "
                         f"(H, W, C) with 1 to 4 channels")
    if array.dtype == np.uint8:
        out = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating):
        out = array.astype(np.float32)
        if not np.isfinite(out).all():
            raise InputError("image contains NaN or infinite values")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(f"float image values must lie in [0, 1]; got range [{lo:.4g}, {hi:.4g}] "
                             "(pass uint8 for 0..255 images)")
    elif array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        raise InputError(f"image dtype {array.dtype} is not supported; use uint8 (0..255) or float in [0, 1]")
    else:
        raise InputError(f"image dtype {array.dtype} is not supported; use uint8 or float in [0, 1]")
    _check_spatial(out.shape[0], out.shape[1])
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]


def _check_tensor(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[0] != 1:
        raise InputError(f"image tensor has shape {tuple(tensor.shape)}; accepted layouts are {IMAGE_LAYOUTS} "
                         "(explain one image at a time, or use sedc.explain_many)")
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
    elif not tensor.is_floating_point():
        raise InputError(f"image tensor dtype {tensor.dtype} is not supported; use a float tensor or uint8")
    tensor = tensor.detach().float()
    if not torch.isfinite(tensor).all():
        raise InputError("image contains NaN or infinite values")
    _check_spatial(tensor.shape[2], tensor.shape[3])
    return tensor


def _check_spatial(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise InputError(f"image must have at least one pixel; got height {height}, width {width}")


def as_segments(segments: Any, height: int, width: int) -> np.ndarray:
    """Validate a label map and return it as an int64 (H, W) numpy array.

    Raises
    ------
    TypeError, ValueError
        When ``segments`` is not an integer (H, W) array or tensor matching the image.
    """
    if isinstance(segments, torch.Tensor):
        segments = segments.detach().cpu().numpy()
    if not isinstance(segments, np.ndarray):
        raise InputTypeError(f"segments must be an integer numpy array or torch tensor of shape (H, W); "
                        f"got {type(segments).__name__}")
    if segments.ndim == 3 and segments.shape[0] == 1:
        segments = segments[0]
    if segments.shape != (height, width):
        raise InputError(f"segments has shape {segments.shape} but the image is {height}x{width}; "
                         f"segments must be an (H, W) = ({height}, {width}) label map")
    if np.issubdtype(segments.dtype, np.floating):
        if not np.all(np.isfinite(segments)) or not np.all(segments == np.round(segments)):
            raise InputError("segments must hold integer labels; got non-integer float values")
        segments = segments.astype(np.int64)
    elif not (np.issubdtype(segments.dtype, np.integer) or segments.dtype == np.bool_):
        raise InputTypeError(f"segments dtype {segments.dtype} is not an integer type")
    return np.ascontiguousarray(segments.astype(np.int64))


def positive_number(name: str, value: Any, *, integer: bool = False, allow_none: bool = True) -> Any:
    """Check that ``value`` is a positive (integer) number, or None where allowed."""
    if value is None and allow_none:
        return None
    kind = "integer" if integer else "number"
    ok_type = isinstance(value, Integral) if integer else isinstance(value, Real)
    if isinstance(value, bool) or not ok_type:
        raise InputTypeError(f"{name} must be a positive {kind}{' or None' if allow_none else ''}; got {value!r}")
    if not value > 0 or (not integer and not np.isfinite(float(value))):
        raise InputError(f"{name} must be a positive {kind}{' or None' if allow_none else ''}; got {value!r}")
    return int(value) if integer else float(value)


def resolve_device(device: Any, fallback: torch.device | None = None) -> torch.device:
    """Resolve ``None``/``"auto"``/str/``torch.device`` to a device.

    ``None`` uses ``fallback`` (typically the model's device) or the CPU; ``"auto"`` picks CUDA when
    available.
    """
    if device is None:
        return fallback if fallback is not None else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"device {device!r} is not valid; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def module_device(classifier: Any) -> torch.device | None:
    """The device of a module's first parameter or buffer, or None."""
    if isinstance(classifier, torch.nn.Module):
        for tensor in classifier.parameters():
            return tensor.device
        for tensor in classifier.buffers():
            return tensor.device
    return None


def classifier_device(classifier: Any, device: Any) -> torch.device:
    """Resolve ``device`` against the classifier's parameters; refuse a mismatch or a non-callable."""
    if not callable(classifier):
        raise InputTypeError(f"classifier must be a torch.nn.Module or a callable mapping (B, C, H, W) "
                        f"tensors to (B, K) scores; got {type(classifier).__name__}")
    own = module_device(classifier)
    dev = resolve_device(device, own)
    if own is not None and own.type != dev.type:
        raise InputError(f"the classifier's parameters are on {own} but device is {dev}; move the "
                         f"model first (model.to({str(dev)!r})) or pass device={str(own)!r}")
    return dev


def split_loaded_model(classifier: Any) -> tuple[Any, list[str] | None]:
    """The module to run and the class names, when ``classifier`` is a loaded model.

    A :class:`sedc.models.LoadedModel` (what :func:`sedc.models.load` returns) is recognised by
    its shape, not its type (this layer sits below :mod:`sedc.models`): an object that is not
    callable but has a ``module`` and ``class_names``. Anything else is returned unchanged,
    with no names.

    Parameters
    ----------
    classifier : Any
        What the caller passed as the classifier.

    Returns
    -------
    (classifier, class_names)
        ``(loaded.module, list(loaded.class_names))`` for a loaded model, else ``(classifier, None)``.
    """
    if callable(classifier) or not hasattr(classifier, "module") or not hasattr(classifier, "class_names"):
        return classifier, None
    names = classifier.class_names
    return classifier.module, None if names is None else [str(name) for name in names]
