"""What every part of the command line shares: exit codes, the usage error, argument types."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any, Callable

from ..base.errors import SedcError
from ..base.options import (check_search, parse_batch_size, parse_checks, parse_integer_option, parse_max_time,
                            parse_modes)

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


def from_rule(rule: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """An argparse type applying a :mod:`sedc.base.options` text rule: its error message is the
    library's (argparse prints it after the flag), and ``name`` appears in argparse's messages."""

    def parse(text: str) -> Any:
        try:
            return rule(text)
        except SedcError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = name
    return parse


batch_size = from_rule(parse_batch_size, "batch_size")   # auto (any case) or N >= 1
max_time = from_rule(parse_max_time, "max_time")         # seconds > 0, or none
modes = from_rule(parse_modes, "modes")                  # MODE[,MODE...]
max_evals = from_rule(functools.partial(parse_integer_option, "max_evals"), "max_evals")
seed = from_rule(functools.partial(parse_integer_option, "seed"), "seed")
checks = from_rule(parse_checks, "checks")                # CHECK[,CHECK...], model:SPEC, or none
search_strategy = from_rule(check_search, "search")       # exact, fast or beam
beam_width = from_rule(functools.partial(parse_integer_option, "beam_width"), "beam_width")


def seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0); got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0); got {text!r}")
    return value


class RenamedFlag(argparse.Action):
    """An option that also answers to its old name (its second option string), with a note on
    stderr when the old name is used."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string is not None and option_string != self.option_strings[0]:
            print(f"{parser.prog}: note: {option_string} is now {self.option_strings[0]}; the old name "
                  "goes in a future release", file=sys.stderr)
        setattr(namespace, self.dest, values)
