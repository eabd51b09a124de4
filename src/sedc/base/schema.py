"""The results schema, owned here: file names, the fields of a result row, and the one reader.

``sedc explain`` writes one JSON object per (image, mode) to ``DIR/results.jsonl`` and one per
failure to ``DIR/errors.jsonl``; ``sedc report`` reads them and writes ``report.html`` and
``summary.json``. :meth:`sedc.Explanation.to_dict` gives the explanation's part of a row
(:data:`EXPLANATION_FIELDS`), the CLI adds the run's part (:data:`RUN_FIELDS`), and everyone
reads rows back with :func:`read_rows`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.jsonl"
ERRORS_FILE = "errors.jsonl"
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"

# The explanation's own fields, in row order: row key -> (Explanation attribute, what it holds).
EXPLANATION_FIELDS: dict[str, tuple[str, str]] = {
    "found": ("found", "whether a counterfactual was found"),
    "original_class": ("original_class", "predicted class of the image"),
    "original_score": ("original_score", "its score"),
    "new_class": ("new_class", "predicted class with the regions removed"),
    "new_score": ("new_score", "its score"),
    "original_class_score": ("original_class_score", "score of original_class with the regions removed"),
    "removed": ("removed", "labels of the removed regions (segments), ascending"),
    "n_segments_total": ("n_segments", "number of regions in the image"),
    "n_evaluations": ("n_evaluations", "model evaluations, the unperturbed image included"),
    "n_model_calls": ("n_model_calls", "model calls (batches) the search took part in, the image's included"),
    "batch_size": ("batch_size", "candidates per model call at the end of the search (what batch_size "
                   "\"auto\" settled on, or the size given)"),
    "elapsed_s": ("elapsed", "seconds of search"),
    "mode": ("mode", "what removed regions became"),
    "search": ("search", "the search strategy: exact, fast or beam(W) with its width W"),
    "stop_reason": ("stop_reason", "found, exhausted, max_time or max_evals"),
    "target": ("target", "the SEDC-T target class searched for, or null"),
    # -- the checks after the search (core/checks.py); null where a check did not run --
    "area": ("area", "fraction of the image's pixels removed (0 when nothing was found)"),
    "verified": ("checks.verified", "the counterfactual evaluated alone (batch of one, no autocast) is "
                 "still new_class and still a counterfactual (check verify)"),
    "verified_class": ("checks.verified_class", "the class it gets evaluated alone"),
    "verified_score": ("checks.verified_score", "its score"),
    "fills": ("checks.fill_outcomes", "the removed regions under each other fill: {fill: {holds, "
              "new_class}}, holds: still a counterfactual (check fills)"),
    "holds_under_every_fill": ("checks.holds_under_every_fill", "still a counterfactual under every "
                               "other fill"),
    "irreducible": ("checks.irreducible", "no single region can be dropped with the class still "
                    "changed (check minimal; true by construction with --prune)"),
    "droppable": ("checks.droppable", "the regions that could be dropped"),
    "check_models": ("checks.model_outcomes", "each second model: {model, original_class, "
                     "new_class, transfers} (check model:SPEC)"),
    "transfers": ("checks.transfers", "every second model also leaves its own original class "
                  "(SEDC) or reaches the target (SEDC-T)"),
    "n_check_evaluations": ("n_check_evaluations", "model evaluations of the checks (not in "
                            "n_evaluations)"),
}

# What ``sedc explain`` adds to each row: class names, ground truth and the run's settings.
RUN_FIELDS: dict[str, str] = {
    "image": "the image's path as given or found",
    "original_label": "class name of original_class",
    "new_label": "class name of new_class",
    "target_label": "class name of target, or null",
    "true_class": "the ground-truth class (null without --ground-truth)",
    "true_label": "its class name",
    "correct": "whether original_class is the true class",
    "target_setting": "--target as given: a class id, \"true\" or null",
    "figure": "the figure's file name in DIR, or null",
    "model": "the --model spec",
    "segmentation": "how the image was cut into regions",
    "runtime": "torch or onnxruntime",
    "preprocessing": "how the photo became the model's input: resize, crop, mean/std",
}

ROW_ORDER = ("image", "found", "original_class", "original_label", "original_score", "true_class",
             "true_label", "correct", "new_class", "new_label", "new_score", "original_class_score",
             "removed", "n_segments_total", "n_evaluations", "n_model_calls", "batch_size", "elapsed_s",
             "mode", "search", "stop_reason",
             "target", "target_label", "target_setting", "figure", "model", "segmentation", "runtime",
             "preprocessing")
# The checks after the search close each row.
CHECK_FIELDS = ("area", "verified", "verified_class", "verified_score", "fills", "holds_under_every_fill",
                "irreducible", "droppable", "check_models", "transfers", "n_check_evaluations")
ROW_ORDER += CHECK_FIELDS


def fills_summary(fills: dict[str, dict[str, Any]] | None) -> str | None:
    """The ``fills`` field in words: ``"holds under blur, mean; not under harmonic"`` (None: not run)."""
    if not fills:
        return None
    holds = [fill for fill, outcome in fills.items() if outcome.get("holds")]
    fails = [fill for fill, outcome in fills.items() if not outcome.get("holds")]
    parts = [f"holds under {', '.join(holds)}"] if holds else []
    if fails:
        parts.append(f"not under {', '.join(fails)}")
    return "; ".join(parts)


# Keys written by earlier versions, read as their current name.
LEGACY_KEYS = {"segments": "removed"}


def ordered(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the schema's fields first, in :data:`ROW_ORDER`, then any others."""
    known = {key: row[key] for key in ROW_ORDER if key in row}
    return {**known, **{key: value for key, value in row.items() if key not in known}}


@dataclass
class Rows:
    """The rows of a JSON-lines file and the lines that were not rows.

    Attributes
    ----------
    rows : list of dict
        The JSON objects with a string ``image`` key, in file order, legacy keys renamed.
    skipped : list of int
        Line numbers of lines that are not such objects (blank lines are not counted).
    truncated : bool
        Whether the last line is an unterminated fragment (a write cut short by a crash).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    truncated: bool = False


def read_rows(path: Path | str) -> Rows:
    """Read a results or errors file, tolerating what a crash or a hand edit leaves behind.

    A missing file has no rows. Lines that are not JSON objects with a string ``image`` are
    skipped and listed; an unterminated last line that is not valid JSON is a cut-short write
    (``truncated``). Keys of earlier versions are renamed (:data:`LEGACY_KEYS`).
    """
    path = Path(path)
    if not path.is_file():
        return Rows()
    data = path.read_text(encoding="utf-8", errors="replace")
    out = Rows()
    lines = data.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = parse_row(line)
        if row is not None:
            out.rows.append(row)
        elif number == len(lines):  # no newline after it: the last write was cut short
            out.truncated = True
        else:
            out.skipped.append(number)
    return out


def parse_row(line: str) -> dict[str, Any] | None:
    """A row parsed from one line (legacy keys renamed), or None when it is not one."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict) or not isinstance(row.get("image"), str):
        return None
    for old, new in LEGACY_KEYS.items():
        if old in row and new not in row:
            row[new] = row.pop(old)
    return row
