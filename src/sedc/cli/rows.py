"""What ``sedc explain`` writes and prints for each image: the results row, the status line and the
closing summary."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from ..base.schema import ordered
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
    (``chelsea.png [mean]: ...`` with ``show_mode``)."""
    before = f"{row['original_label']} {row['original_score']:.2f}"
    n = len(row["removed"])
    if row["found"]:
        change = f"{before} -> {row['new_label']} {row['new_score']:.2f}, {plural(n, 'region')}"
    else:
        toward = f" toward {row['target_label']}" if row.get("target_label") else ""
        change = f"{before}, no counterfactual{toward} ({row['stop_reason']})"
    name = f"{row['image']} [{row['mode']}]" if show_mode else row["image"]
    return f"{name}: {change}, {row['n_evaluations']} evals, {row['elapsed_s']:.1f} s"



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
    accuracy = accuracy_line(rows)
    if accuracy:
        print(accuracy)
    figures = f"; figures: {run.store.folder}{os.sep}*.png" if any(r["figure"] for r in rows) else ""
    print(f"Results: {run.store.results}{figures}")



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
