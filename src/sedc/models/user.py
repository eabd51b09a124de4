"""Your own classifier, from any of the model specs ``sedc explain --model`` accepts.

=================================  ===========================================================
``torchvision:NAME[:WEIGHTS]``     a torchvision classifier with pretrained weights
``timm:NAME``                      a timm classifier (``timm:hf-hub:ORG/NAME`` too)
``hf:ORG/NAME`` or ``hf:DIR``      a Hugging Face ``AutoModelForImageClassification``
``FILE.onnx``                      an ONNX model, run by ONNX Runtime
``FILE.pt2``                       a ``torch.export`` program
``FILE.pt``                        a TorchScript file
``package.module:factory``         ``factory()`` returns a ``torch.nn.Module`` (the current
                                   folder is on ``sys.path``, as with ``python -m``)
=================================  ===========================================================

Library models bring their own preprocessing (resize, crop, normalisation) and class names;
files and factories take ``input_size`` and ``normalize``.

.. warning::
   Files and factories execute code: loading a TorchScript or ``torch.export`` file runs the
   program stored in it, and a ``package.module:factory`` spec imports that module and calls the
   factory. Only load files and modules you trust.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch
from torch import nn

from ..base.deprecated import renamed_argument
from ..base.errors import InputError, InputTypeError, ModelFileNotFoundError, ModelUnavailableError
from ..base.outputs import in_training_mode
from ..base.validate import resolve_device
from .base import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, Normalized
from .files import file_kind, load_exported, load_onnx, load_torchscript
from .labels import imagenet_labels, read_labels
from .libraries import LibraryModel, load_hf, load_timm, load_torchvision
from .preprocessing import Preprocessing

#: Input normalisations understood by :func:`load_user_model`: name -> (mean, std) or None.
NORMALIZATIONS: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = MappingProxyType({
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
})
LIBRARY_PREFIXES = ("torchvision:", "timm:", "hf:")
DEFAULT_INPUT_SIZE = 224

_FACTORY_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_MODEL_FILE_SUFFIXES = (".pt", ".pth", ".pt2", ".onnx", ".ts", ".jit", ".torchscript", ".zip")
_LIBRARY_MODULES = ("torchvision.", "timm.", "transformers.")


def is_library_spec(spec: Any) -> bool:
    """Whether ``spec`` names a torchvision, timm or Hugging Face model (its own preprocessing)."""
    return isinstance(spec, str) and spec.strip().startswith(LIBRARY_PREFIXES)


def load_user_model(spec: str | Path, *, input_size: int | tuple[int, int] | None = None,
                    normalize: str | None = None, class_names: str | Path | None = None,
                    softmax: bool = True, device: str | torch.device | None = None,
                    **renamed: Any) -> LoadedModel:
    """Load your own classifier from a model spec (see the module's table).

    .. warning::
       Files and factories run code: only load files and modules you trust.

    Parameters
    ----------
    spec : str or pathlib.Path
        A model spec: ``torchvision:NAME[:WEIGHTS]``, ``timm:NAME``, ``hf:ORG/NAME``,
        ``hf:DIR``, a ``.onnx`` / ``.pt2`` / TorchScript file, or ``package.module:factory``
        (called with no arguments; it must return a ``torch.nn.Module`` mapping normalised
        (B, 3, H, W) batches to class scores).
    input_size : int, (height, width) or None
        Files and factories: the size images are resized to (default 224, or the size fixed in
        a ``.pt2`` program). Library models take theirs from their metadata.
    normalize : {"imagenet", "half", "none"} or None
        Files and factories: the normalisation built into the module (default ``"imagenet"``:
        mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225); ``"half"``: 0.5 and 0.5;
        ``"none"``: [0, 1] pixels). Library models use their own.
    class_names : str, pathlib.Path or None
        ``"imagenet"`` for the ImageNet-1k names, a text file with one name per line, or None
        for the model's own names (library models) or the class ids. (``labels=``, its name
        before 0.2, still works, with a ``DeprecationWarning``.)
    softmax : bool, default True
        Apply a softmax so scores are probabilities; False keeps the model's raw outputs.
    device : str, torch.device or None
        Where to put the model; None means the CPU.

    Returns
    -------
    LoadedModel
        In eval mode, with the model's :class:`~sedc.models.preprocessing.Preprocessing`.

    Raises
    ------
    ModelFileNotFoundError
        A file spec that does not exist (a ``ValueError``).
    ModelUnavailableError
        A library model that is not installed, unknown, or neither cached nor downloadable.
    InputError
        Any other problem with the spec, the options or the model's output.
    InputTypeError
        A factory that is not callable or does not return a ``torch.nn.Module``.
    """
    class_names = renamed_argument(renamed, "labels", "class_names", class_names)
    if renamed:
        raise InputTypeError(f"load_user_model() got unexpected keyword argument(s) {', '.join(sorted(renamed))}")
    if not isinstance(spec, (str, Path)):
        raise InputTypeError(f"model spec must be a str or pathlib.Path; got {type(spec).__name__}")
    dev = resolve_device(device)
    text = str(spec).strip()
    if is_library_spec(text):
        _refuse_overrides(text, input_size, normalize)
        return _from_library(load_library(text), class_names, softmax, dev)
    net, fixed = _load_spec(spec, text, dev)
    preprocessing = _own_preprocessing(text, input_size, fixed, normalize)
    return _finish(net, preprocessing, class_names, None, softmax, dev, text)


def load_library(spec: str) -> LibraryModel:
    """A library model from ``torchvision:...``, ``timm:...`` or ``hf:...``."""
    kind, _, rest = spec.partition(":")
    if not rest:
        raise InputError(f"model spec {spec!r} names no model; e.g. {kind}:"
                         + {"torchvision": "resnet50", "timm": "resnet18", "hf": "ORG/NAME"}[kind])
    if kind == "torchvision":
        name, _, weights = rest.partition(":")
        return load_torchvision(name, weights or None)
    if kind == "timm":
        return load_timm(rest)
    return load_hf(rest)


def _refuse_overrides(spec: str, input_size: Any, normalize: Any) -> None:
    given = [name for name, value in (("input_size", input_size), ("normalize", normalize))
             if value is not None]
    if given:
        raise InputError(f"{' and '.join(given)} do not apply to {spec}: it brings its own "
                         "preprocessing (resize, crop and normalisation from its metadata)")


def _from_library(model: LibraryModel, labels: Any, softmax: bool, device: torch.device) -> LoadedModel:
    return _finish(model.net, model.preprocessing, labels, model.labels, softmax, device, model.name)


def _finish(net: nn.Module, preprocessing: Preprocessing, labels: Any, own_labels: list[str] | None,
            softmax: bool, device: torch.device, name: str) -> LoadedModel:
    mean, std = _folded_normalization(preprocessing)
    module = Normalized(net, mean, std, softmax=softmax).to(device).eval()
    num_classes = _probe_num_classes(module, preprocessing.input_size, device, name)
    names = choose_labels(labels, own_labels, num_classes)
    return LoadedModel(module, names, _size_field(preprocessing), name, preprocessing)


def _folded_normalization(p: Preprocessing) -> tuple[Any, Any]:
    """``(x * scale - mean) / std`` as ``(x - mean / scale) / (std / scale)``."""
    if p.mean is None:
        return (None, None) if p.scale == 1.0 else ((0.0,) * 3, (1.0 / p.scale,) * 3)
    return tuple(m / p.scale for m in p.mean), tuple(s / p.scale for s in p.std)


def _size_field(p: Preprocessing) -> int | tuple[int, int] | None:
    size = p.input_size
    if size is None:
        return None
    return size[0] if size[0] == size[1] else size


def choose_labels(labels: Any, own: list[str] | None, num_classes: int) -> list[str]:
    """Class names: ``labels`` (``"imagenet"`` or a file) over the model's own over the ids.

    Raises
    ------
    ValueError
        When the chosen names do not match ``num_classes``.
    """
    if labels is None:
        names, source = (own, "the model's own labels") if own else ([str(k) for k in range(num_classes)], "")
    elif isinstance(labels, str) and labels.strip().lower() == "imagenet":
        names, source = imagenet_labels(), "the ImageNet-1k labels"
    else:
        names, source = read_labels(labels), f"labels file '{labels}'"
    if len(names) != num_classes:
        raise InputError(f"{source} has {len(names)} names but the model outputs {num_classes} "
                         "classes; give one name per class, in output order")
    return list(names)


# --------------------------------------------------------------------------------------------
# Files and factories
# --------------------------------------------------------------------------------------------

def _own_preprocessing(spec: str, input_size: Any, fixed: tuple[int, int] | None,
                       normalize: str | None) -> Preprocessing:
    size = _check_size(input_size)
    if fixed is not None and size is not None and size != fixed:
        raise InputError(f"input_size {size[0]}x{size[1]} does not match the {fixed[0]}x{fixed[1]} "
                         f"input fixed in {spec}")
    size = size or fixed or (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    norm = _normalization("imagenet" if normalize is None else normalize)
    mean, std = norm if norm is not None else (None, None)
    return Preprocessing(resize=size, interpolation="bicubic", mean=mean, std=std)


def _check_size(input_size: Any) -> tuple[int, int] | None:
    if input_size is None:
        return None
    pair = tuple(input_size) if isinstance(input_size, (tuple, list)) else (input_size, input_size)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise InputTypeError(f"input_size must be a positive int or a (height, width) pair; got {input_size!r}")
    if min(pair) < 1:
        raise InputError(f"input_size must be positive; got {input_size!r}")
    return int(pair[0]), int(pair[1])


def _normalization(normalize: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if not isinstance(normalize, str):
        raise InputTypeError(f"normalize must be one of {list(NORMALIZATIONS)}; got {type(normalize).__name__}")
    key = normalize.strip().lower()
    if key not in NORMALIZATIONS:
        raise InputError(f"normalize must be one of {list(NORMALIZATIONS)}; got {normalize!r}")
    return NORMALIZATIONS[key]


def _load_spec(spec: str | Path, text: str, device: torch.device) -> tuple[nn.Module, tuple[int, int] | None]:
    """The network of a file or factory spec, and the input size it fixes (``.pt2``) or None."""
    path = Path(text).expanduser()
    if path.is_file():
        return _load_file(path, device)
    if path.is_dir():
        hint = f"; for a Hugging Face save_pretrained folder use hf:{text}" \
            if (path / "config.json").is_file() else ""
        raise InputError(f"model spec {text!r} is a folder; give a model file or "
                         f"'package.module:factory'{hint}")
    if isinstance(spec, str) and _FACTORY_SPEC.match(text):
        return load_factory(text).to(device), None
    if isinstance(spec, Path) or _looks_like_path(text):
        raise ModelFileNotFoundError(f"model file not found: '{path.absolute()}'")
    raise InputError(f"model spec {text!r} is not a model file, 'package.module:factory', "
                     "torchvision:NAME, timm:NAME or hf:ORG/NAME")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).suffix.lower() in _MODEL_FILE_SUFFIXES


def _load_file(path: Path, device: torch.device) -> tuple[nn.Module, tuple[int, int] | None]:
    """Load by content, not by name: a ``.pt`` holding an export loads as one, and so on."""
    kind = file_kind(path)
    if kind == "export":
        return load_exported(path, device)
    if kind == "onnx":
        return load_onnx(path, device)
    if kind == "unknown" and path.suffix.lower() == ".pt2":
        return load_exported(path, device)
    if kind == "checkpoint":
        raise InputError(f"'{path}' is a torch.save checkpoint (a state_dict or a pickled model), "
                         "not a runnable model: give a 'package.module:factory' spec whose factory "
                         "builds the model and loads it, or save the model with torch.jit.script "
                         "(.pt) or torch.export (.pt2)")
    return load_torchscript(path, device), None


def load_factory(spec: str) -> nn.Module:
    """Import ``package.module`` (the current folder on ``sys.path``) and call ``factory()``.

    Raises
    ------
    ValueError
        The module cannot be imported or lacks the attribute, or the factory is torchvision's
        or timm's own builder (random weights: use ``torchvision:NAME`` / ``timm:NAME``).
    TypeError
        The attribute is not callable or does not return a ``torch.nn.Module``.
    """
    module_name, attr_path = spec.split(":", 1)
    module = _import(module_name, spec)
    factory: Any = module
    for attr in attr_path.split("."):
        if not hasattr(factory, attr):
            raise InputError(f"module {module_name!r} has no attribute {attr_path!r} "
                             f"(from model spec {spec!r}, expected 'package.module:factory')")
        factory = getattr(factory, attr)
    if not callable(factory):
        raise InputTypeError(f"{spec!r} is a {type(factory).__name__}, not a callable factory; it must be "
                        "a function or class that, called with no arguments, returns a torch.nn.Module")
    _refuse_library_builder(spec, module_name, factory)
    model = factory()
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"factory {spec!r} returned a {type(model).__name__}; it must return a "
                        "torch.nn.Module")
    if in_training_mode(model):
        warnings.warn(f"{spec} returned a model in training mode; sedc evaluates it in eval mode. "
                      "If the factory did not load trained weights, its explanations mean nothing",
                      UserWarning, stacklevel=4)
    return model


def _import(module_name: str, spec: str) -> Any:
    """Import as ``python -m`` would: the current folder comes first on ``sys.path``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"cannot import module {module_name!r} from model spec {spec!r} ({err}); "
                         "expected 'package.module:factory' with the module in the current folder "
                         "or importable (e.g. on PYTHONPATH)") from err


def _refuse_library_builder(spec: str, module_name: str, factory: Any) -> None:
    owner = f"{getattr(factory, '__module__', '') or ''}."
    found = [m for m in (module_name + ".", owner) if m.startswith(_LIBRARY_MODULES)]
    if not found:
        return
    library = found[0].split(".")[0]
    name = getattr(factory, "__name__", spec.split(":")[-1])
    hint = "hf:ORG/NAME" if library == "transformers" else f"{library}:{name}"
    raise InputError(f"{spec} would build {library}'s model with random weights; use --model "
                     f"{hint} for the pretrained model with its own preprocessing and labels")


def _probe_num_classes(module: nn.Module, size: tuple[int, int] | None, device: torch.device,
                       name: str) -> int:
    height, width = size or (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    batch = torch.zeros(1, 3, height, width, device=device)
    try:
        with torch.no_grad():
            out = module(batch)
    except Exception as err:  # user code: any failure means the model does not fit the contract
        raise InputError(f"model {name!r} failed on a zeros batch of shape (1, 3, {height}, {width}) "
                         f"({type(err).__name__}: {_first_line(err)}); check input_size and normalize "
                         "(the model must take RGB batches (B, 3, H, W))") from err
    if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 1:
        raise InputError(f"model {name!r} returned {tuple(out.shape)} for one image; it must return "
                         "class scores of shape (B, K)")
    return int(out.shape[1])


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


__all__ = ["DEFAULT_INPUT_SIZE", "LIBRARY_PREFIXES", "NORMALIZATIONS", "ModelUnavailableError",
           "choose_labels", "is_library_spec", "load_factory", "load_library", "load_user_model"]
