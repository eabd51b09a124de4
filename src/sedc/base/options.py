"""One options object for every entry point: :class:`ExplainOptions`, validated here, once.

``sedc.explain``, ``explain_many``, the worker processes, Ray and the command line all describe a
search with the same settings. Each setting has one rule (its ``check_*`` function below) and one
default (the dataclass field); the CLI's argument types (:func:`parse_batch_size`,
:func:`parse_max_time`, :func:`parse_modes`) apply the same rules to text. Every layer below the
public boundary takes the object and trusts it.

Adding an option: a field here with its rule in ``_RULES`` (``per_image=True`` when a
:class:`sedc.scale.Task` may set it for one image), the flag in ``sedc/cli/main.py`` with its
entry in ``sedc.cli.explain.OPTION_FLAGS``, and the code that reads it (``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .errors import InputError, InputTypeError
from .validate import positive_number

MODE_HELP = {  # the built-in fills: what a removed segment becomes
    "mean": "the image's mean colour",
    "blur": "a strongly blurred copy of the image (Gaussian 31x31, sigma 5)",
    "random": "uniform noise (reproducible with the seed)",
    "inpaint": "OpenCV Navier-Stokes inpainting from the surrounding pixels, region by region",
    "inpaint_telea": "OpenCV Telea inpainting, region by region",
    "harmonic": "smooth inpainting of all regions at once, computed in PyTorch on the device",
}
MODES = tuple(MODE_HELP)
CHECK_HELP = {  # the checks run on each counterfactual after the search (core/checks.py)
    "verify": "re-evaluate the counterfactual alone (a batch of one, no autocast): 1 evaluation",
    "fills": "the same regions removed with each other fill (mean, blur, random, harmonic): <= 4",
    "minimal": "whether a single region can be dropped and the class stays changed: <= k",
}
CHECKS = tuple(CHECK_HELP)
DEFAULT_CHECKS = ("verify",)
CHECK_FILLS = ("mean", "blur", "random", "harmonic")  # harmonic: the inpainting computed on the device
MODEL_CHECK = "model:"  # how the command line names a second model: model:SPEC

# The search strategies (sedc.core.strategies): when to use which, as measured on 14 photos by
# `sedc benchmark --search` (README, Performance). "exact" is the original method and the default.
SEARCH_HELP = {
    "exact": "the original SEDC search: the paper's answer",
    "fast": "ranks the regions, removes the top ones, prunes: about half of exact's evaluations "
            "(0.53-0.56x measured), so about half the time on a CPU, for an irreducible answer of "
            "the same median size; but more, smaller model calls (a GPU may gain less)",
    "beam": "keeps the best --beam-width sets per depth (1: greedy): a smaller answer in about one "
            "case in seven, for 1.5-2.8x exact's evaluations",
}
SEARCHES = tuple(SEARCH_HELP)
DEFAULT_BEAM_WIDTH = 2  # the beam's width when search="beam" is given without one
AUTO = "auto"
NO_LIMIT = "none"  # how the command line spells "no limit" (None in Python)


def _per_image(default: Any) -> Any:
    """A field a :class:`sedc.scale.Task` may set for one image."""
    return field(default=default, metadata={"per_image": True})


@dataclass(frozen=True)
class ExplainOptions:
    """The settings of one search, applied to every image of a run.

    Parameters
    ----------
    mode : str, callable or array
        What a removed segment becomes: one of :data:`MODES`, a callable
        ``(image, segmentation) -> fill`` or a ready fill image.
    target : int, optional
        SEDC-T target class; None runs plain SEDC.
    batch_size : int or "auto"
        Candidates per model call; ``"auto"`` (any case) measures and settles on the fastest size
        (1, 2, 4, ... on a CPU), and remembers it for the classifier object.
    max_time : float, optional
        Seconds after which a search stops (``stop_reason="max_time"``); None: no limit.
    max_evals : int, optional
        Model evaluations (the unperturbed image included) after which a search stops.
    seed : int
        Seed of the ``random`` fill.
    prune : bool
        After a counterfactual is found, drop segments while the class stays changed.
    autocast : bool
        On CUDA, run the model under float16 autocast.
    channels_last : bool or "auto"
        Feed channels-last batches; ``"auto"``: on for modules with 2-D convolutions.
    max_batch : int, optional
        Memory cap: never more than this many candidates in one model call.
    checks : tuple of str
        The checks run on each counterfactual after the search, any of :data:`CHECKS`
        (``"verify"``, ``"fills"``, ``"minimal"``); ``()`` for none. A single name, a list or a
        set is accepted and kept in :data:`CHECKS` order.
    check_models : tuple
        Second classifiers the counterfactual is shown to (the ``transfers`` check): modules or
        callables taking the first model's input, :class:`sedc.models.ModelSpec` s (loaded
        where the check runs, resized to their own input size) or loaded models.
    search : {"exact", "fast", "beam"}
        The search strategy (:data:`SEARCHES`): ``"exact"`` (the original SEDC answer),
        ``"fast"`` or ``"beam"`` (see ``docs/algorithm.md``).
    beam_width : int, optional
        Sets kept per depth by ``search="beam"`` (1 is greedy; None: :data:`DEFAULT_BEAM_WIDTH`).
        Refused with another search.

    Raises
    ------
    InputTypeError, InputError
        When a setting has the wrong type or value; the message names the setting and what is
        allowed.
    """

    mode: Any = _per_image("blur")
    target: int | None = _per_image(None)
    batch_size: int | str = AUTO
    max_time: float | None = _per_image(None)
    max_evals: int | None = _per_image(None)
    seed: int = _per_image(0)
    prune: bool = _per_image(False)
    autocast: bool = False
    channels_last: bool | str = AUTO
    max_batch: int | None = None
    # -- the checks after the search (core/checks.py) --
    checks: tuple[str, ...] = DEFAULT_CHECKS
    check_models: tuple[Any, ...] = ()
    search: str = "exact"
    beam_width: int | None = None

    def __post_init__(self) -> None:
        for name, value in check_fields({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}).items():
            object.__setattr__(self, name, value)
        check_search_width(self.search, self.beam_width)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def per_image_names(cls) -> tuple[str, ...]:
        """The options one image may set for itself (the others shape shared model batches)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("per_image"))

    @classmethod
    def build(cls, options: ExplainOptions | None = None, **overrides: Any) -> ExplainOptions:
        """``options`` (or the defaults) with ``overrides`` applied; unknown names are refused.

        Raises
        ------
        InputTypeError
            For a name that is not an option (the message lists the valid ones), or ``options``
            that is not an ExplainOptions.
        """
        check_names(overrides, cls.names(), "option")
        if options is not None and not isinstance(options, ExplainOptions):
            raise InputTypeError(f"options must be an ExplainOptions; got {type(options).__name__}")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **overrides) if overrides else base

    def with_checked(self, checked: Mapping[str, Any]) -> ExplainOptions:
        """These options with ``checked`` values put over them, without checking them again.

        ``checked`` must come from :func:`check_fields` (a :class:`sedc.scale.Task` checks its
        settings when it is made, in the caller's process).
        """
        if not checked:
            return self
        new = object.__new__(ExplainOptions)
        for name in self.names():
            object.__setattr__(new, name, checked.get(name, getattr(self, name)))
        check_search_width(new.search, new.beam_width)  # each value is checked, not the pair
        return new


def check_names(given: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """Refuse names not in ``allowed``, listing the valid ones."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputTypeError(f"unknown {what}(s) {', '.join(unknown)}; the {what}s are {', '.join(allowed)}")


def check_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The checked (normalised) value of each named option in ``values``."""
    return {name: _RULES[name](value) for name, value in values.items()}


def check_mode(mode: Any) -> Any:
    """A mode name of :data:`MODES`, a callable ``(image, segmentation) -> fill`` or a fill image."""
    if isinstance(mode, str):
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; valid modes are {', '.join(map(repr, MODES))}, "
                             "a callable (image, segmentation) -> fill, or a fill image")
        return mode
    if not isinstance(mode, (torch.Tensor, np.ndarray)) and not callable(mode):
        raise InputTypeError(f"mode must be one of {list(MODES)}, a callable (image, segmentation) -> fill, "
                             f"or a fill image; got {type(mode).__name__}")
    return mode


def mode_name(mode: Any) -> str:
    """Name of a mode for reports: the string itself, or ``"custom"``."""
    return mode if isinstance(mode, str) else "custom"


def check_target(target: Any) -> int | None:
    """Validate the type of ``target`` (its range is checked against the model's output)."""
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, Integral):
        raise InputTypeError(f"target must be None or an integer class index; got {target!r}")
    if target < 0:
        raise InputError(f"target must be a class index >= 0; got {target}")
    return int(target)


def check_batch_size(batch_size: Any) -> int | str:
    """``"auto"`` (any case) or a positive int."""
    if isinstance(batch_size, str) and batch_size.strip().lower() == AUTO:
        return AUTO
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
        raise InputTypeError(f"batch_size must be 'auto' or a positive integer; got {batch_size!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be 'auto' or a positive integer; got {batch_size!r}")
    return int(batch_size)


def check_max_time(max_time: Any) -> float | None:
    """Positive seconds, or None for no limit."""
    if max_time is None:
        return None
    if isinstance(max_time, bool) or not isinstance(max_time, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"max_time must be a positive number of seconds, or None for no limit ('none' on the command line); got {max_time!r}")
    if not 0 < float(max_time) < float("inf"):
        raise InputError(f"max_time must be a positive number of seconds, or None for no limit ('none' on the command line); got {max_time!r}")
    return float(max_time)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise InputTypeError(f"seed must be an integer; got {seed!r}")
    return int(seed)


def _flag(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise InputTypeError(f"{name} must be True or False; got {value!r}")
        return bool(value)
    return check


def _check_channels_last(option: Any) -> bool | str:
    if isinstance(option, str) and option == AUTO:
        return AUTO
    if not isinstance(option, (bool, np.bool_)):
        raise InputTypeError(f"channels_last must be True, False or 'auto'; got {option!r}")
    return bool(option)


def check_checks(checks: Any) -> tuple[str, ...]:
    """Names of :data:`CHECKS` (one name, or a sequence or set of them), in :data:`CHECKS` order;
    None or ``()`` for no checks."""
    if checks is None:
        return ()
    names = (checks,) if isinstance(checks, str) else checks
    if not isinstance(names, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in names):
        raise InputTypeError(f"checks must be a tuple of check names ({', '.join(CHECKS)}) or () for "
                             f"none; got {checks!r}")
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        hint = " (a second model is given with check_models=)" if any(n.startswith(MODEL_CHECK.rstrip(":"))
                                                                     for n in unknown) else ""
        raise InputError(f"unknown check(s) {', '.join(map(repr, unknown))}; the checks are "
                         f"{', '.join(CHECKS)}{hint}")
    return tuple(name for name in CHECKS if name in names)


def check_check_models(models: Any) -> tuple[Any, ...]:
    """Second classifiers: a module, callable, ``ModelSpec`` or loaded model, or a sequence of them."""
    if models is None:
        return ()
    items = tuple(models) if isinstance(models, (list, tuple)) else (models,)
    for item in items:
        if not (callable(item) or hasattr(item, "module")):
            raise InputTypeError("check_models must hold classifiers (modules or callables), "
                                 "sedc.models.ModelSpec s or loaded models; got "
                                 f"{type(item).__name__}")
    return items
def check_search(search: Any) -> str:
    """One of :data:`SEARCHES`."""
    if not isinstance(search, str):
        raise InputTypeError(f"search must be one of {', '.join(SEARCHES)}; got {search!r}")
    if search not in SEARCHES:
        raise InputError(f"unknown search {search!r}; choose one of {', '.join(SEARCHES)}")
    return search


def check_beam_width(width: Any) -> int | None:
    """A positive integer, or None for the default width (:data:`DEFAULT_BEAM_WIDTH`)."""
    return positive_number("beam_width", width, integer=True)


def check_search_width(search: str, beam_width: int | None) -> None:
    """Refuse a beam width given for another search than ``"beam"`` (it would be ignored)."""
    if beam_width is not None and search != "beam":
        raise InputError(f"beam_width applies to search='beam' only; got beam_width={beam_width} "
                         f"with search={search!r}")


def search_name(search: str, beam_width: int | None) -> str:
    """How results record a search: ``"exact"``, ``"fast"``, ``"beam(2)"`` (the width always)."""
    if search != "beam":
        return search
    return f"beam({DEFAULT_BEAM_WIDTH if beam_width is None else beam_width})"


_RULES: dict[str, Callable[[Any], Any]] = {
    "mode": check_mode,
    "target": check_target,
    "batch_size": check_batch_size,
    "max_time": check_max_time,
    "max_evals": lambda value: positive_number("max_evals", value, integer=True),
    "seed": _check_seed,
    "prune": _flag("prune"),
    "autocast": _flag("autocast"),
    "channels_last": _check_channels_last,
    "max_batch": lambda value: positive_number("max_batch", value, integer=True),
    "checks": check_checks,
    "check_models": check_check_models,
    "search": check_search,
    "beam_width": check_beam_width,
}


# --------------------------------------------------------------------------------------------
# The same rules, read from text (the command line's argument types)
# --------------------------------------------------------------------------------------------

def parse_batch_size(text: str) -> int | str:
    """``auto`` (any case) or a positive integer, as :func:`check_batch_size` rules."""
    return check_batch_size(text if text.strip().lower() == AUTO else _integer(text, "batch_size"))


def parse_max_time(text: str) -> float | None:
    """Positive seconds, or ``none`` for no limit, as :func:`check_max_time` rules."""
    if text.strip().lower() == NO_LIMIT:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"max_time must be a positive number of seconds or 'none' (no limit); "
                         f"got {text!r}") from None
    return check_max_time(value)


def parse_modes(text: str) -> list[str]:
    """One mode or a comma-separated list (``mean,blur``; duplicates dropped), each checked."""
    modes = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not modes:
        raise InputError(f"unknown mode {text!r}; choose from {', '.join(MODES)}, or a comma-separated "
                         "list of them (e.g. mean,blur,inpaint)")
    for mode in modes:
        check_mode(mode)
    return modes


def parse_checks(text: str) -> tuple[str, ...]:
    """``--check``: a comma-separated list of :data:`CHECKS` and ``model:SPEC`` entries, or
    ``none``; each name checked by :func:`check_checks`, each ``model:`` given a spec."""
    parts = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if parts == [NO_LIMIT] or not parts:
        return ()
    models = [part for part in parts if part.startswith(MODEL_CHECK)]
    if any(not part[len(MODEL_CHECK):].strip() for part in models):
        raise InputError(f"{MODEL_CHECK}SPEC needs a model spec after the colon (e.g. "
                         f"model:torchvision:resnet50); got {text!r}")
    names = check_checks([part for part in parts if part not in models])
    return names + tuple(MODEL_CHECK + part[len(MODEL_CHECK):].strip() for part in models)


def parse_integer_option(name: str, text: str) -> int:
    """An integer option (``max_evals``, ``seed``, ``max_batch``, ...) read from text, checked by its rule."""
    return check_fields({name: _integer(text, name)})[name]


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        allowed = "'auto' or a positive integer" if name == "batch_size" else "an integer"
        raise InputError(f"{name} must be {allowed}; got {text!r}") from None
