"""One options object for every entry point: :class:`ExplainOptions`.

``sedc.explain``, ``explain_many``, the worker processes, Ray and the CLI all describe a search
with the same ten settings. They are validated here, once, when the object is made; every layer
below takes the object and trusts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import torch

from .errors import InputError, InputTypeError
from .validate import positive_number

MODES = ("mean", "blur", "random", "inpaint", "inpaint_telea", "harmonic")


@dataclass(frozen=True)
class ExplainOptions:
    """The settings of one search, applied to every image of a run.

    Parameters
    ----------
    mode : str, callable or array
        What a removed segment becomes: one of :data:`MODES`, a callable
        ``(image, segments) -> fill`` or a ready fill image.
    target : int, optional
        SEDC-T target class; None runs plain SEDC.
    batch_size : int or "auto"
        Candidates per model call; ``"auto"`` measures and settles on the fastest size.
    max_time : float, optional
        Seconds after which a search stops (``stop_reason="max_time"``).
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

    Raises
    ------
    TypeError, ValueError
        When a setting has the wrong type or value; the message names the setting and what is
        allowed.
    """

    mode: Any = "blur"
    target: int | None = None
    batch_size: int | str = "auto"
    max_time: float | None = None
    max_evals: int | None = None
    seed: int = 0
    prune: bool = False
    autocast: bool = False
    channels_last: bool | str = "auto"
    max_batch: int | None = None

    def __post_init__(self) -> None:
        check_mode(self.mode)
        checked = {
            "target": check_target(self.target),
            "batch_size": check_batch_size(self.batch_size),
            "max_time": positive_number("max_time", self.max_time),
            "max_evals": positive_number("max_evals", self.max_evals, integer=True),
            "seed": _check_seed(self.seed),
            "prune": _check_flag("prune", self.prune),
            "autocast": _check_flag("autocast", self.autocast),
            "channels_last": _check_channels_last(self.channels_last),
            "max_batch": positive_number("max_batch", self.max_batch, integer=True),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def build(cls, options: ExplainOptions | None = None, **overrides: Any) -> ExplainOptions:
        """``options`` (or the defaults) with ``overrides`` applied; unknown names are refused.

        Raises
        ------
        TypeError
            For a name that is not an option (the message lists the valid ones).
        """
        unknown = sorted(set(overrides) - set(cls.names()))
        if unknown:
            raise InputTypeError(f"unknown option(s) {', '.join(unknown)}; the options are "
                            f"{', '.join(cls.names())}")
        if options is not None and not isinstance(options, ExplainOptions):
            raise InputTypeError(f"options must be an ExplainOptions; got {type(options).__name__}")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **overrides) if overrides else base

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (``mode`` as given)."""
        return {name: getattr(self, name) for name in self.names()}


def check_mode(mode: Any) -> None:
    """Raise for an unknown mode name or a mode of the wrong type (listing what is allowed)."""
    if isinstance(mode, str):
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; valid modes are {', '.join(map(repr, MODES))}, "
                             "a callable (image, segments) -> fill, or a fill image")
        return
    if not isinstance(mode, (torch.Tensor, np.ndarray)) and not callable(mode):
        raise InputTypeError(f"mode must be one of {list(MODES)}, a callable (image, segments) -> fill, "
                        f"or a fill image; got {type(mode).__name__}")


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
    """Validate ``batch_size``: ``"auto"`` or a positive int."""
    if isinstance(batch_size, str) and batch_size == "auto":
        return "auto"
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
        raise InputTypeError(f"batch_size must be 'auto' or a positive integer; got {batch_size!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be 'auto' or a positive integer; got {batch_size!r}")
    return int(batch_size)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise InputTypeError(f"seed must be an integer; got {seed!r}")
    return int(seed)


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _check_channels_last(option: Any) -> bool | str:
    if isinstance(option, str) and option == "auto":
        return "auto"
    if not isinstance(option, (bool, np.bool_)):
        raise InputTypeError(f"channels_last must be True, False or 'auto'; got {option!r}")
    return bool(option)
