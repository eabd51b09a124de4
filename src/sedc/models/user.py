"""Your own classifier from a TorchScript file or a ``package.module:factory`` spec.

.. warning::
   Both forms execute code: loading a TorchScript file runs the program stored in it, and a
   ``package.module:factory`` spec imports that module and calls the factory. Only load files and
   modules you trust.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch
from torch import nn

from .._validate import positive_number, resolve_device
from .base import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, ModelFileNotFoundError, Normalized
from .labels import read_labels

#: Input normalisations understood by :func:`load_user_model`: name -> (mean, std) or None.
NORMALIZATIONS: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = MappingProxyType({
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
})

_FACTORY_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_MODEL_FILE_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript", ".zip")


def load_user_model(spec: str | Path, *, input_size: int = 224, normalize: str = "imagenet",
                    labels: str | Path | None = None, softmax: bool = True,
                    device: str | torch.device | None = None) -> LoadedModel:
    """Load your own classifier from a TorchScript file or a ``package.module:factory`` spec.

    .. warning::
       This runs code. A TorchScript file contains a program that is executed when the model
       runs, and a ``module:factory`` spec imports that module (running its top-level code) and
       calls the factory. Only load files and modules you trust.

    Parameters
    ----------
    spec : str or pathlib.Path
        Either the path of a TorchScript file (saved with ``torch.jit.script(m).save(path)`` or
        ``torch.jit.trace``), or ``"package.module:factory"``: the module is imported (it must be
        importable, e.g. on ``PYTHONPATH``) and ``factory()`` is called with no arguments and must
        return a ``torch.nn.Module``. The model must map normalised (B, 3, H, W) batches to (B, K)
        class scores (logits).
    input_size : int, default 224
        Side length of the square images the model expects.
    normalize : {"imagenet", "half", "none"}, default "imagenet"
        Input normalisation built into the returned module: ``"imagenet"`` uses mean
        (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); ``"half"`` uses mean 0.5 and std 0.5
        (inputs in [-1, 1]); ``"none"`` passes [0, 1] images unchanged.
    labels : str, pathlib.Path or None
        UTF-8 text file with one class name per line (see :func:`read_labels`). None names the
        classes by their ids, ``"0"``, ``"1"``, ...
    softmax : bool, default True
        Apply a softmax so scores are probabilities; False keeps the model's raw outputs.
    device : str, torch.device or None
        Where to put the model; None means the CPU.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelFileNotFoundError
        If ``spec`` looks like a file path but no such file exists (a ``ValueError``).
    ValueError
        For a spec that is neither form, a module that cannot be imported, a file that is not
        TorchScript, a bad ``normalize``, a labels file that is invalid or does not match the
        number of classes, or a model that fails on a zeros batch of ``input_size``.
    TypeError
        If the factory is not callable or does not return a ``torch.nn.Module``.
    """
    size = positive_number("input_size", input_size, integer=True, allow_none=False)
    norm = _normalization(normalize)
    dev = resolve_device(device)
    net, name = _load_spec(spec, dev)
    module = Normalized(net, *(norm or (None, None)), softmax=softmax).to(dev).eval()
    num_classes = _probe_num_classes(module, size, dev, name)
    names = _user_labels(labels, num_classes)
    return LoadedModel(module, names, size, name)


def _normalization(normalize: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if not isinstance(normalize, str):
        raise TypeError(f"normalize must be one of {list(NORMALIZATIONS)}; got {type(normalize).__name__}")
    key = normalize.strip().lower()
    if key not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {list(NORMALIZATIONS)}; got {normalize!r}")
    return NORMALIZATIONS[key]


def _load_spec(spec: str | Path, device: torch.device) -> tuple[nn.Module, str]:
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"model spec must be a TorchScript file path or 'package.module:factory' "
                        f"string; got {type(spec).__name__}")
    text = str(spec).strip()
    path = Path(text).expanduser()
    if path.is_file():
        return _load_torchscript(path, device), text
    if path.is_dir():
        raise ValueError(f"model spec {text!r} is a directory; give a TorchScript file or "
                         "'package.module:factory'")
    if isinstance(spec, str) and _FACTORY_SPEC.match(text):
        return _load_factory(text).to(device), text
    if isinstance(spec, Path) or _looks_like_path(text):
        raise ModelFileNotFoundError(f"model file not found: '{path.absolute()}'")
    raise ValueError(f"model spec {text!r} is neither an existing TorchScript file nor of the form "
                     "'package.module:factory' (e.g. 'mypackage.models:build')")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in _MODEL_FILE_SUFFIXES


def _load_torchscript(path: Path, device: torch.device) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"could not load '{path}' as TorchScript ({_first_line(err)}); save the model with "
            "torch.jit.script(model).save(path) or torch.jit.trace(model, example).save(path). "
            "A state_dict or a pickled model cannot be loaded from a file: use a "
            "'package.module:factory' spec whose factory builds the model and loads the weights"
        ) from err


def _load_factory(spec: str) -> nn.Module:
    module_name, attr_path = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} from model spec {spec!r} ({err}); "
                         "expected 'package.module:factory' with the module importable "
                         "(e.g. on PYTHONPATH)") from err
    factory: Any = module
    for attr in attr_path.split("."):
        if not hasattr(factory, attr):
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r} "
                             f"(from model spec {spec!r}, expected 'package.module:factory')")
        factory = getattr(factory, attr)
    if not callable(factory):
        raise TypeError(f"{spec!r} is a {type(factory).__name__}, not a callable factory; it must be "
                        "a function or class that, called with no arguments, returns a torch.nn.Module")
    model = factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory {spec!r} returned a {type(model).__name__}; it must return a "
                        "torch.nn.Module")
    return model


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _probe_num_classes(module: nn.Module, size: int, device: torch.device, name: str) -> int:
    batch = torch.zeros(1, 3, size, size, device=device)
    try:
        with torch.no_grad():
            out = module(batch)
    except Exception as err:  # user code: any failure means the model does not fit the contract
        raise ValueError(f"model {name!r} failed on a zeros batch of shape (1, 3, {size}, {size}) "
                         f"({type(err).__name__}: {_first_line(err)}); check input_size and normalize "
                         "(the model must take RGB batches (B, 3, H, W))") from err
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model {name!r} returned {shape} for one image; it must return class "
                         "scores of shape (B, K)")
    return int(out.shape[1])


def _user_labels(labels: str | Path | None, num_classes: int) -> list[str]:
    if labels is None:
        return [str(k) for k in range(num_classes)]
    names = read_labels(labels)
    if len(names) != num_classes:
        raise ValueError(f"labels file '{labels}' has {len(names)} names but the model outputs "
                         f"{num_classes} classes; give one name per class, in output order")
    return names
