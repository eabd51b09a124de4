"""What every part of the command line shares: exit codes, the usage error, argument types."""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def input_size(text: str) -> int | tuple[int, int]:
    """argparse type: ``S`` (a square side) or ``HxW`` (height by width), positive integers."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) == 2:
        try:
            return positive_int(parts[0].strip()), positive_int(parts[1].strip())
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected S or HxW (e.g. 224 or 224x320); got {text!r}") from None
    return positive_int(text)


def batch_size(text: str) -> int | str:
    """argparse type: ``auto`` or an integer >= 1."""
    return "auto" if text.strip().lower() == "auto" else positive_int(text)


def max_time(text: str) -> float | None:
    """argparse type: seconds >= 0, where 0 means no limit (None)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0); got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0); got {text!r}")
    return None if value == 0 else value


def seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0); got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0); got {text!r}")
    return value
