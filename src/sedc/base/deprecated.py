"""Renamed public names: the old one keeps working for one release, with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings
from typing import Any

from .errors import InputTypeError


def renamed_argument(kwargs: dict[str, Any], old: str, new: str, value: Any, stacklevel: int = 3) -> Any:
    """``value``, or what was passed under the deprecated keyword ``old`` (popped from ``kwargs``).

    Raises
    ------
    InputTypeError
        When both the old and the new name were given.
    """
    if old not in kwargs:
        return value
    warnings.warn(f"the {old}= argument is now {new}=; the old name goes in a future release",
                  DeprecationWarning, stacklevel=stacklevel)
    given = kwargs.pop(old)
    if value is not None:
        raise InputTypeError(f"pass {new}= only (got both {new}= and its old name {old}=)")
    return given


def renamed_attribute(owner: str, old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``owner.old`` is now ``owner.new``."""
    warnings.warn(f"{owner}.{old} is now {owner}.{new}; the old name goes in a future release",
                  DeprecationWarning, stacklevel=stacklevel)
