"""What happens to an image that fails, on every many-image backend: one policy, one rule.

- **The error policy** (:func:`failed`): with ``on_error="raise"`` a failed image raises
  :class:`sedc.ImageError` (the original exception, where there is one in this process, is its
  ``__cause__``); with ``on_error="return"`` the error is yielded in the image's place and the
  other images go on.
"""

from __future__ import annotations

from typing import Any

from ..base.errors import ImageError, InputError

ON_ERROR = ("raise", "return")


def check_on_error(on_error: Any) -> str:
    """Validate ``on_error``: ``"raise"`` or ``"return"``."""
    if on_error not in ON_ERROR:
        raise InputError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
    return on_error


def failed(error: ImageError, on_error: str) -> tuple[int, ImageError]:
    """Apply the error policy: raise ``error`` (``"raise"``) or return ``(index, error)``."""
    if on_error == "raise":
        if error.error is not None:
            raise error from error.error
        raise error
    return error.index, error
