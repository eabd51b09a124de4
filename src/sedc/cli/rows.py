"""What ``sedc explain`` writes and prints for each image: the results row, the status line and the
closing summary."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from ..base.schema import fills_summary, ordered
from .dataset import accuracy_line, truth_fields
from .results import RESULTS_FILE, ResultStore


def result_row(image: str, e: Any, class_names: list[str], settings: dict[str, Any],
               figure: str | None, true_class: int | None = None) -> dict[str, Any]:
    """The results.jsonl object of one explanation: :meth:`sedc.Explanation.to_dict` and the run's
    fields (:data:`sedc.base.schema.RUN_FIELDS`), in the schema's order."""
    from ..models.labels import class_name

    d = e.to_dict()
    target = d["target"]
    return ordered({
        **d, "image": image, "elapsed_s": round(d["elapsed_s"], 4),
        "original_label": class_name(d["original_class"], class_names),
        "new_label": class_name(d["new_class"], class_names),
        "target_label": None if target is None else class_name(target, class_names),
        **truth_fields(true_class, d["original_class"], class_names),
        "target_setting": settings["target"], "figure": figure, "model": settings["model"],
        "segmentation": settings["segmentation"], "runtime": settings.get("runtime", "torch"),
        "preprocessing": settings.get("preprocessing"),
    })


def figure_title(settings: dict[str, Any]) -> str:
    """The figure's caption: the model and the runtime that ran it."""
    return f"{settings['model']} on {settings.get('runtime', 'torch')}"



def status_line(row: dict[str, Any], show_mode: bool = False) -> str:
    """``chelsea.png: Egyptian cat 0.79 -> tabby 0.41, 3 regions, 57 evals, 4.1 s``
    (``chelsea.png [mean]: ...`` with ``show_mode``), then what the checks beyond verify found
    (``...; holds under blur, mean; not under harmonic``)."""
    before = f"{row['original_label']} {row['original_score']:.2f}"
    n = len(row["removed"])
    if row["found"]:
        change = f"{before} -> {row['new_label']} {row['new_score']:.2f}, {plural(n, 'region')}"
    else:
        toward = f" toward {row['target_label']}" if row.get("target_label") else ""
        change = f"{before}, no counterfactual{toward} ({row['stop_reason']})"
    name = f"{row['image']} [{row['mode']}]" if show_mode else row["image"]
    checks = check_summary(row)
    tail = f"; {checks}" if checks else ""
    return f"{name}: {change}, {row['n_evaluations']} evals, {row['elapsed_s']:.1f} s{tail}"


def check_summary(row: dict[str, Any]) -> str:
    """What the checks beyond verify found, in words: ``holds under blur, mean; not under harmonic;
    irreducible; transfers to resnet50`` (empty when none ran)."""
    parts = [fills_summary(row.get("fills")) or ""]
    if row.get("irreducible") is not None:
        drop = ", ".join(map(str, row.get("droppable") or []))
        parts.append("irreducible" if row["irreducible"] else f"reducible (could drop {drop})")
    for model in row.get("check_models") or []:
        parts.append(f"{'transfers' if model['transfers'] else 'does not transfer'} to {model['model']}")
    return "; ".join(part for part in parts if part)


def unverified_warning(row: dict[str, Any], class_names: list[str], show_mode: bool = False) -> str | None:
    """The warning for a counterfactual that did not verify (None when it did, or was not checked)."""
    if row.get("verified") is not False:
        return None
    from ..models.labels import class_name

    name = f"{row['image']} [{row['mode']}]" if show_mode else row["image"]
    alone = f"{class_name(row['verified_class'], class_names)} {row['verified_score']:.2f}"
    return (f"warning: {name}: the counterfactual did not verify: evaluated alone (a batch of one, "
            f"no autocast) the model says {alone}, not {row['new_label']} {row['new_score']:.2f}")



def print_summary(run: Run) -> None:
    """Counts, medians, total time and where the outputs are."""
    rows = run.rows
    found = [row for row in rows if row["found"]]
    what = plural(run.total, "image") if run.n_modes == 1 else f"{run.total} (image, mode) pairs"
    parts = [f"explained {len(rows)} of {what}"]
    if rows:
        parts.append(f"found {len(found)}/{len(rows)}")
    if run.skipped:
        parts.append(f"skipped {run.skipped} already in {RESULTS_FILE} (--overwrite redoes them)")
    if run.failed:
        parts.append(f"{len(run.failed)} failed (listed in {run.store.errors})")
    print("Done: " + ", ".join(parts) + ".")
    for note in run.notes:
        print(note)
    stats = []
    if found:
        median = statistics.median(len(r["removed"]) for r in found)
        stats.append(f"median {median:g} region{'s' * (median != 1)} (where found)")
    if rows:
        median = statistics.median(r["n_evaluations"] for r in rows)
        stats.append(f"median {median:g} evaluation{'s' * (median != 1)}")
    stats.append(f"total time {time.perf_counter() - run.started:.1f} s")
    line = ", ".join(stats)
    print(line[0].upper() + line[1:] + ".")
    checks = checks_line(rows)
    if checks:
        print(checks)
    accuracy = accuracy_line(rows)
    if accuracy:
        print(accuracy)
    figures = f"; figures: {run.store.folder}{os.sep}*.png" if any(r["figure"] for r in rows) else ""
    print(f"Results: {run.store.results}{figures}")



def checks_line(rows: list[dict[str, Any]]) -> str | None:
    """``Checks: 3 of 4 verified (1 not: see the warnings), 2 of 4 hold under every fill, ...``,
    each over the rows its check ran on; None when no check ran."""
    parts = []
    for key, text in CHECK_COUNTS.items():
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            parts.append(f"{values.count(True)} of {len(values)} {text}")
            if key == "verified" and False in values:
                parts[-1] += f" ({values.count(False)} not: see the warnings)"
    return "Checks: " + ", ".join(parts) + "." if parts else None


CHECK_COUNTS = {"verified": "verified", "holds_under_every_fill": "hold under every fill",
                "irreducible": "irreducible", "transfers": "transfer"}


def plural(n: int, word: str) -> str:
    """``"1 region"``, ``"3 regions"``."""
    return f"{n} {word}{'s' * (n != 1)}"


@dataclass
class Run:
    """One ``sedc explain`` run: where it writes, what it records, and what happened."""

    store: "ResultStore"
    class_names: list[str]
    settings: dict[str, Any]
    quiet: bool
    total: int = 0  # images x modes
    skipped: int = 0
    n_modes: int = 1
    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # extra summary lines (Ray's actor deaths)
    started: float = field(default_factory=time.perf_counter)
