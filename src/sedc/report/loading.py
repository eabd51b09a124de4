"""Reading ``results.jsonl`` and ``errors.jsonl`` from a results folder (the schema's reader)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..base.schema import ERRORS_FILE, RESULTS_FILE, read_rows


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """The rows of a results or errors file (:func:`sedc.base.schema.read_rows`).

    Lines that are not rows are skipped with a warning naming them; a last line cut short by an
    interrupted run is skipped silently. A missing file gives an empty list.
    """
    found = read_rows(path)
    if found.skipped:
        lines = ", ".join(map(str, found.skipped[:5])) + (", ..." if len(found.skipped) > 5 else "")
        warnings.warn(f"{path}: skipped {len(found.skipped)} line(s) that are not result rows "
                      f"(line {lines})", UserWarning, stacklevel=2)
    return found.rows


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
