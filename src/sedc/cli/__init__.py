"""The ``sedc`` command line (:func:`main`); see ``sedc --help``."""

from .main import build_parser, main
from .results import read_rows

__all__ = ["build_parser", "main", "read_rows"]
