"""Classifiers from torchvision, timm and Hugging Face transformers, with their own preprocessing.

Each loader returns a :class:`LibraryModel`: the network as the library builds it (in eval mode),
its class names, and its :class:`~sedc.models.preprocessing.Preprocessing` read off the library's
own settings and checked against the library's own pipeline on a probe image.

Weights come from the libraries' caches: ``TORCH_HOME`` (torchvision, older timm weights) and
``HF_HOME`` / ``HF_HUB_CACHE`` (timm, transformers); with ``HF_HUB_OFFLINE=1`` nothing is
downloaded. A model that is neither cached nor downloadable raises
:class:`ModelUnavailableError` with one line naming the model and the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from ..base.errors import ModelUnavailableError
from .preprocessing import Preprocessing, check_matches, from_hf, from_timm, from_torchvision

__all__ = ["LibraryModel", "ModelUnavailableError", "load_hf", "load_timm", "load_torchvision"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LibraryModel:
    """A library's classifier with what sedc needs to prepare images for it.

    Attributes
    ----------
    net : torch.nn.Module
        The network as the library builds it, in eval mode (takes normalised batches).
    labels : list of str
        Class names from the model's own metadata.
    preprocessing : Preprocessing
    name : str
        The spec it was loaded from (``"timm:resnet18"``).
    """

    net: nn.Module
    labels: list[str]
    preprocessing: Preprocessing
    name: str


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def import_library(module: str, spec: str, extra: str) -> Any:
    """Import ``module`` for ``spec``, or raise :class:`ModelUnavailableError` with the install line.

    Any import failure counts: a torchvision wheel built for another torch fails with a
    RuntimeError (``operator torchvision::nms does not exist``), not an ImportError.
    """
    try:
        return importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - see above
        raise ModelUnavailableError(
            f"{spec} needs {module}, which cannot be imported here ({_first_line(err)}); install it "
            f"with pip install 'sedc[{extra}]' (a build matching your torch)") from None


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.6)
    return f"; did you mean: {', '.join(close)}?" if close else ""


# --------------------------------------------------------------------------------------------
# torchvision
# --------------------------------------------------------------------------------------------

def load_torchvision(name: str, weights: str | None = None) -> LibraryModel:
    """``torchvision:NAME[:WEIGHTS]``: a torchvision classifier with pretrained weights.

    Parameters
    ----------
    name : str
        A classification model of ``torchvision.models`` (``"resnet50"``).
    weights : str or None
        A weights name of that model (``"IMAGENET1K_V2"``, ``"ResNet50_Weights.IMAGENET1K_V2"``)
        or ``"DEFAULT"``; None means ``"DEFAULT"`` (random weights would explain nothing).

    Raises
    ------
    ModelUnavailableError
        torchvision missing, unknown model or weights, or weights neither cached nor downloadable.
    """
    spec = f"torchvision:{name}" + (f":{weights}" if weights else "")
    tv = import_library("torchvision", spec, "torchvision")
    known = tv.models.list_models(module=tv.models)
    if name not in known:
        raise ModelUnavailableError(f"unknown torchvision classifier {name!r}{_suggest(name, known)}")
    chosen = _torchvision_weights(tv, name, weights, spec)
    transform = chosen.transforms()
    preprocessing = from_torchvision(transform)
    check_matches(preprocessing, transform, spec)
    try:
        net = tv.models.get_model(name, weights=chosen)
    except Exception as err:  # noqa: BLE001 - download errors come in many types
        raise ModelUnavailableError(_torchvision_download_message(spec, chosen, err)) from None
    return LibraryModel(net.eval(), list(chosen.meta["categories"]), preprocessing, spec)


def _torchvision_weights(tv: Any, name: str, weights: str | None, spec: str) -> Any:
    enum = tv.models.get_model_weights(name)
    key = (weights or "DEFAULT").split(".")[-1]
    if key.upper() == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[key]
    except KeyError:
        options = ", ".join(w.name for w in enum)
        raise ModelUnavailableError(f"{spec}: unknown weights {weights!r}; {enum.__name__} has "
                                    f"{options} (or DEFAULT)") from None


def _torchvision_download_message(spec: str, weights: Any, err: BaseException) -> str:
    import torch.hub

    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(str(weights.url)).name
    return (f"{spec}: the weights {weights} are not in the local cache ({file}) and could not be "
            f"downloaded ({_first_line(err)}); run once with network access, or copy the file "
            "there (TORCH_HOME sets the cache folder)")


# --------------------------------------------------------------------------------------------
# timm
# --------------------------------------------------------------------------------------------

def load_timm(name: str) -> LibraryModel:
    """``timm:NAME``: a timm classifier with pretrained weights (``hf-hub:ORG/NAME`` too).

    Raises
    ------
    ModelUnavailableError
        timm missing, unknown model, no pretrained weights, or weights neither cached nor
        downloadable.
    """
    spec = f"timm:{name}"
    timm = import_library("timm", spec, "timm")
    if not name.startswith("hf-hub:") and not timm.list_models(name.split(".")[0]):
        known = timm.list_models(pretrained=True)
        raise ModelUnavailableError(f"unknown timm model {name!r}{_suggest(name, known)}")
    try:
        net = timm.create_model(name, pretrained=True)
    except OSError as err:  # not in the caches, and no download (offline, no network)
        raise ModelUnavailableError(_timm_download_message(spec, err)) from None
    except Exception as err:  # noqa: BLE001
        raise ModelUnavailableError(f"{spec}: cannot load its pretrained weights "
                                    f"({_first_line(err)})") from None
    config = timm.data.resolve_model_data_config(net)
    preprocessing = from_timm(config)
    check_matches(preprocessing, timm.data.create_transform(**config), spec)
    return LibraryModel(net.eval(), timm_labels(net), preprocessing, spec)


def _timm_download_message(spec: str, err: BaseException) -> str:
    """Where timm looked (the Hugging Face cache, torch.hub's for older weights) and the fix."""
    import torch.hub
    from huggingface_hub import constants

    offline = ", HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else ""
    older = Path(torch.hub.get_dir()) / "checkpoints"
    return (f"{spec}: its pretrained weights are not in the local caches ({constants.HF_HUB_CACHE}; "
            f"older timm weights: {older}) and could not be downloaded ({type(err).__name__}"
            f"{offline}); run once with network access to cache them (HF_HOME or HF_HUB_CACHE "
            "and TORCH_HOME set the cache folders)")


def timm_labels(net: nn.Module) -> list[str]:
    """Class names of a timm model: its own label names, ImageNet's, or the class ids."""
    from .labels import imagenet_labels

    count = int(getattr(net, "num_classes", 0) or 0)
    config = dict(getattr(net, "pretrained_cfg", None) or {})
    names = config.get("label_names")
    if names and len(names) == count:
        described = config.get("label_descriptions") or {}
        return [str(described.get(n, n)) for n in names]
    if count == 1000:
        return imagenet_labels()
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(net)
        if subset:
            return [str(d) for d in ImageNetInfo(subset).label_descriptions()]
    except Exception:  # noqa: BLE001 - older timm: fall back to ids
        pass
    return [str(i) for i in range(count)]


# --------------------------------------------------------------------------------------------
# Hugging Face transformers
# --------------------------------------------------------------------------------------------

def load_hf(ref: str) -> LibraryModel:
    """``hf:ORG/NAME`` or ``hf:DIR``: an ``AutoModelForImageClassification`` and its processor.

    Parameters
    ----------
    ref : str
        A ``save_pretrained`` folder (holding ``config.json``, the weights and
        ``preprocessor_config.json``) or a Hub id, loaded from the local cache or downloaded.

    Raises
    ------
    ModelUnavailableError
        transformers missing, a missing folder, a folder without an image processor, a model
        that is not an image classifier, or a Hub model neither cached nor downloadable.
    """
    spec = f"hf:{ref}"
    transformers = import_library("transformers", spec, "hf")
    source = _hf_source(ref, spec)
    with _quiet_transformers(transformers):
        processor = _hf_call(transformers.AutoImageProcessor.from_pretrained, source, spec,
                             "image processor", **_pil_backend(transformers))
        net = _hf_call(transformers.AutoModelForImageClassification.from_pretrained, source, spec,
                       "model")
    preprocessing = from_hf(processor)
    check_matches(preprocessing, lambda im: processor(im, return_tensors="pt")["pixel_values"], spec)
    config = net.config
    labels = [str(config.id2label.get(i, i)) for i in range(int(config.num_labels))]
    return LibraryModel(net.eval(), labels, preprocessing, spec)


def _hf_source(ref: str, spec: str) -> str:
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "preprocessor_config.json").is_file():
            raise ModelUnavailableError(
                f"{spec}: the folder has no preprocessor_config.json; save the image processor "
                "beside the model (AutoImageProcessor.from_pretrained(...).save_pretrained(DIR))")
        return str(path)
    if path.exists():
        raise ModelUnavailableError(f"{spec}: '{path.absolute()}' is a file; give the folder "
                                    "written by save_pretrained, or a Hub id ORG/NAME")
    if not _HUB_ID.match(ref):
        raise ModelUnavailableError(f"{spec}: no such folder ('{path.absolute()}'); give a "
                                    "save_pretrained folder or a Hub id ORG/NAME")
    return ref


def _hf_call(load: Any, source: str, spec: str, what: str, **kwargs: Any) -> Any:
    try:
        return load(source, **kwargs)
    except ValueError as err:  # e.g. "Unrecognized configuration class" for a text model
        raise ModelUnavailableError(f"{spec}: not an image classification model "
                                    f"({_first_line(err)})") from None
    except OSError as err:
        if Path(source).is_dir():
            raise ModelUnavailableError(f"{spec}: cannot read the {what} ({_first_line(err)})") from None
        raise ModelUnavailableError(_hub_message(spec, source, err)) from None


def _hub_message(spec: str, repo: str, err: BaseException) -> str:
    from huggingface_hub import constants

    offline = " (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else ""
    return (f"{spec}: not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and it could "
            f"not be downloaded{offline}; run once with network access to cache it, or pass a "
            f"save_pretrained folder as hf:DIR")


def _pil_backend(transformers: Any) -> dict[str, Any]:
    """Ask for the Pillow image processor: the reference the check compares with."""
    major = int(str(transformers.__version__).split(".")[0])
    return {"backend": "pil"} if major >= 5 else {"use_fast": False}


@contextlib.contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """Silence transformers' info logs and progress bars while loading, then restore them."""
    logging = transformers.utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
