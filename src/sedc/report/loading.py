"""Reading ``results.jsonl`` and ``errors.jsonl`` from a results folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..base.errors import InputError

RESULTS_FILE, ERRORS_FILE = "results.jsonl", "errors.jsonl"


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per line.

    Blank lines are skipped, and so is a last line that is not valid JSON (a run interrupted
    while writing it); an invalid line anywhere else is an error.

    Parameters
    ----------
    path : pathlib.Path or str
        The file; a missing file gives an empty list.

    Returns
    -------
    list of dict
        The objects, in file order.

    Raises
    ------
    ValueError
        If a line other than the last is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = [(i, line) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if line.strip()]
    rows = []
    for position, (number, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if position == len(lines) - 1:
                break
            raise InputError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def load_results(folder: Path | str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``folder/results.jsonl`` and ``folder/errors.jsonl``.

    Parameters
    ----------
    folder : pathlib.Path or str
        A folder written by ``sedc explain``.

    Returns
    -------
    (rows, errors) : tuple of two lists of dict
        Either may be empty.
    """
    folder = Path(folder)
    return read_jsonl(folder / RESULTS_FILE), read_jsonl(folder / ERRORS_FILE)
