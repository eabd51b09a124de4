"""The result files of ``sedc explain``: ``results.jsonl`` (durable, resumable) and ``errors.jsonl``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..base import schema
from ..base.errors import UsageError
from ..base.schema import ERRORS_FILE, RESULTS_FILE

# Settings that must match for a resumed run to add rows to an existing results.jsonl. The mode
# is not one of them: rows are kept per (image, mode), so a run may add modes to a results file.
RUN_KEYS = ("model", "segmentation", "target", "search")
# The row field that records a run setting, where it is not the setting's own name: a row's
# "target" is the class its search aimed at, which under "--target true" differs per image
# (the true class, or null for a correctly classified image); "target_setting" is --target itself.
ROW_FIELDS = {"target": "target_setting"}
# What a row written before a setting was recorded was made with: every search was exact.
LEGACY_SETTINGS = {"search": "exact"}


# --------------------------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------------------------

class ResultStore:
    """``DIR/results.jsonl`` (appended and fsynced row by row) and ``DIR/errors.jsonl``.

    Parameters
    ----------
    folder : pathlib.Path
        The output folder, created if needed.
    overwrite : bool
        Start a new results.jsonl instead of resuming the existing one.
    """

    def __init__(self, folder: Path, overwrite: bool) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create the output folder '{self.folder}': {err}") from None
        self.results = self.folder / RESULTS_FILE
        self.errors = self.folder / ERRORS_FILE
        self.errors.unlink(missing_ok=True)  # it lists the failures of the latest run only
        if overwrite:
            self.results.write_text("", encoding="utf-8")
        self.done: dict[tuple[str, Any], dict[str, Any]] = {
            (row["image"], row.get("mode")): row for row in read_rows(self.results)}
        self.stems: set[str] = {Path(row["figure"]).stem for row in self.done.values()
                                if isinstance(row.get("figure"), str)}

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse to mix rows made with other settings into results.jsonl."""
        for row in self.done.values():
            differ = [f"{key} {run_setting(row, key)!r} (now {settings[key]!r})" for key in RUN_KEYS
                      if run_setting(row, key) != settings[key]]
            if differ:
                raise UsageError(f"{self.results} holds results made with other settings: "
                                 f"{', '.join(differ)}; use --overwrite to replace them or --out "
                                 "to write elsewhere")

    def append(self, row: dict[str, Any]) -> None:
        """Add a row to results.jsonl, durably."""
        append_line(self.results, row)
        self.done[(row["image"], row.get("mode"))] = row

    def append_error(self, row: dict[str, Any]) -> None:
        """Add a failure to errors.jsonl."""
        append_line(self.errors, row)


def run_setting(row: dict[str, Any], key: str) -> Any:
    """The run setting ``key`` a row was made with (rows written before ``target_setting``
    existed record a fixed target in ``target``)."""
    field = ROW_FIELDS.get(key, key)
    return row[field] if field in row else row.get(key, LEGACY_SETTINGS.get(key))


def append_line(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (fsync), so a crash loses no finished image."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results file (:func:`sedc.base.schema.read_rows`), made ready for appending.

    An unterminated last line is dropped from the file when it is not valid JSON (a write cut
    short), or terminated when it is, so that appended rows start on a line of their own.
    """
    found = schema.read_rows(path)
    if path.is_file():
        repair_tail(path, found.truncated)
    return found.rows


def repair_tail(path: Path, truncated: bool) -> None:
    """Terminate the unterminated last line of ``path``, or drop it when ``truncated``."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    if not truncated:
        with open(path, "ab") as handle:
            handle.write(b"\n")
        return
    print(f"warning: dropping an incomplete last line of {path} (an interrupted write)", file=sys.stderr)
    with open(path, "r+b") as handle:
        handle.truncate(data.rfind(b"\n") + 1)
