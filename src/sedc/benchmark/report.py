"""Reporting a benchmark: statistics, answer checks, the machine, text tables and plots."""

from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .measure import BASELINE, RULE, RunRecord

# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------

def _stats(values: Sequence[float]) -> dict[str, float]:
    values = [float(v) for v in values]
    if not values:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "median": math.nan}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,  # sample standard deviation
        "min": min(values),
        "max": max(values),
        "median": statistics.median(values),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def find_mismatches(runs: Iterable[RunRecord], baseline: str = BASELINE) -> list[dict]:
    """Runs whose answer differs from the baseline's answer on the same (mode, photo).

    The reference answer is the baseline's first run (warm-up included); every other run,
    including the baseline's own later rounds, is compared with it. Runs that hit a max_evals cap
    are skipped (their answer is incomplete by design). Identical wrong answers of one
    implementation on one photo are reported once, with the list of rounds.
    """
    runs = list(runs)
    reference: dict[tuple[str, str], RunRecord] = {}
    for run in runs:
        if run.implementation == baseline and not run.capped:
            reference.setdefault((run.mode, run.photo), run)
    found: dict[tuple, dict] = {}
    for run in runs:
        if run.capped:
            continue
        ref = reference.get((run.mode, run.photo))
        if ref is None or run is ref or run.answer.key == ref.answer.key:
            continue
        key = (run.mode, run.photo, run.implementation, run.answer.key)
        entry = found.get(key)
        if entry is None:
            found[key] = entry = {
                "mode": run.mode, "photo": run.photo, "implementation": run.implementation,
                "baseline": baseline,
                "expected": {"segments": list(ref.answer.key[0]), "new_class": ref.answer.new_class,
                             "found": ref.answer.found},
                "got": {"segments": list(run.answer.key[0]), "new_class": run.answer.new_class,
                        "found": run.answer.found},
                "rounds": [],
            }
        entry["rounds"].append(run.round)
    return list(found.values())


def summarize(runs: Iterable[RunRecord], baseline: str = BASELINE,
              mismatches: list[dict] | None = None, exact: dict[str, bool] | None = None) -> dict:
    """Statistics per mode and implementation, from the non-warm-up runs.

    Returns ``{mode: {implementation: stats}}`` where the times are per *round* (one
    implementation explaining every photo once, summed over the photos), and

    - ``mean``/``std`` (sample)/``min``/``max``/``median``: seconds per round,
    - ``per_explanation``: mean seconds per photo (round mean / number of photos),
    - ``speedup``: mean baseline / mean; ``median_speedup``: median baseline / median,
    - ``evaluations_per_explanation``, ``calls_per_explanation``: model rows and calls per run,
    - ``evaluations_per_second``: all rows / all seconds,
    - ``model_bound``: all model seconds / all seconds,
    - ``warmup_seconds``: the warm-up round's seconds (all photos, summed), None without one: the
      first calls, with any one-time setup (on a GPU, per new batch shape); the rounds are
      interleaved, so an implementation after another may find kernels already loaded,
    - ``valid``: no mismatch (see :func:`find_mismatches`), ``exact``: whether a mismatch fails,
    - ``photos``: per photo median seconds, mean evaluations and the first answer.
    """
    runs = list(runs)
    if mismatches is None:
        mismatches = find_mismatches(runs, baseline)
    exact = exact or {}
    bad = {(m["mode"], m["implementation"]) for m in mismatches}
    out: dict[str, dict[str, dict]] = {}
    modes = list(dict.fromkeys(r.mode for r in runs))
    for mode in modes:
        timed = [r for r in runs if r.mode == mode and not r.warmup]
        names = list(dict.fromkeys(r.implementation for r in runs if r.mode == mode))
        per_mode: dict[str, dict] = {}
        for name in names:
            mine = [r for r in timed if r.implementation == name]
            warm = [r.seconds for r in runs if r.mode == mode and r.warmup and r.implementation == name]
            rounds: dict[int, float] = {}
            for r in mine:
                rounds[r.round] = rounds.get(r.round, 0.0) + r.seconds
            photos = list(dict.fromkeys(r.photo for r in mine))
            stats = _stats([rounds[k] for k in sorted(rounds)])
            total = sum(r.seconds for r in mine)
            rows = sum(r.model_evaluations for r in mine)
            n = len(mine)
            stats.update({
                "round_seconds": [rounds[k] for k in sorted(rounds)],
                "warmup_seconds": sum(warm) if warm else None,
                "n_photos": len(photos),
                "per_explanation": _ratio(stats["mean"], len(photos)),
                "evaluations_per_explanation": _ratio(rows, n),
                "calls_per_explanation": _ratio(sum(r.model_calls for r in mine), n),
                "evaluations_per_second": _ratio(rows, total),
                "model_bound": _ratio(sum(r.model_seconds for r in mine), total),
                "valid": (mode, name) not in bad,
                "exact": exact.get(name, True),
                "photos": {
                    p: {
                        "median_seconds": statistics.median([r.seconds for r in mine if r.photo == p]),
                        "evaluations": statistics.fmean([r.model_evaluations for r in mine if r.photo == p]),
                        "n_segments": next(r.n_segments for r in mine if r.photo == p),
                        "answer": asdict(next(r.answer for r in mine if r.photo == p)),
                    } for p in photos
                },
            })
            per_mode[name] = stats
        base = per_mode.get(baseline) or (per_mode[names[0]] if names else None)
        for stats in per_mode.values():
            stats["speedup"] = _ratio(base["mean"], stats["mean"]) if base else math.nan
            stats["median_speedup"] = _ratio(base["median"], stats["median"]) if base else math.nan
        out[mode] = per_mode
    return out


def _fmt(x: float, spec: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_mismatch(m: dict, labels: Sequence[str] | None = None) -> str:
    def side(a: dict) -> str:
        name = f" ({labels[a['new_class']]})" if labels and 0 <= a["new_class"] < len(labels) else ""
        what = f"segments {a['segments']}" if a["found"] else "no counterfactual"
        return f"{what} -> class {a['new_class']}{name}"
    rounds = ", ".join("warm-up" if r < 0 else str(r) for r in m["rounds"])
    return (f"!!! MISMATCH [{m['mode']}] {m['implementation']} on {m['photo']} (round {rounds}): "
            f"got {side(m['got'])}; {m['baseline']} gave {side(m['expected'])}")


def format_summary(summary: dict, mismatches: list[dict], baseline: str = BASELINE,
                   labels: Sequence[str] | None = None) -> str:
    """The seed's summary block per mode, plus the extra measures and the answers check."""
    lines: list[str] = []
    for mode, per_mode in summary.items():
        names = list(per_mode)
        base = baseline if baseline in per_mode else (names[0] if names else baseline)
        n_photos = max((s["n_photos"] for s in per_mode.values()), default=0)
        n_rounds = max((s["n"] for s in per_mode.values()), default=0)
        lines += ["", RULE, f"SEDC PERFORMANCE COMPARISON SUMMARY (mode: {mode})", RULE,
                  f"Times: seconds per round = explaining all {n_photos} photo(s) once, summed; "
                  f"{n_rounds} round(s) after warm-up.",
                  f"Speedup = mean {base} time / mean time; median speedup = median {base} / median.", ""]
        for name, s in per_mode.items():
            lines.append(f"{name.upper()} IMPLEMENTATION:")
            lines.append(f"  Mean time: {_fmt(s['mean'], '.4f')} ± {_fmt(s['std'], '.4f')} seconds")
            lines.append(f"  Min time:  {_fmt(s['min'], '.4f')} seconds")
            lines.append(f"  Max time:  {_fmt(s['max'], '.4f')} seconds")
            lines.append(f"  Speedup:   {_fmt(s['speedup'], '.2f')}x")
            lines.append(f"  Median time:    {_fmt(s['median'], '.4f')} seconds "
                         f"(median speedup {_fmt(s['median_speedup'], '.2f')}x)")
            lines.append(f"  Per explanation: {_fmt(s['per_explanation'], '.4f')} seconds (mean)")
            if s.get("warmup_seconds") is not None:
                lines.append(f"  Warm-up round:  {s['warmup_seconds']:.4f} seconds (first calls, not in the "
                             "statistics)")
            lines.append(f"  Model evaluations per explanation: {_fmt(s['evaluations_per_explanation'], '.1f')}"
                         f" in {_fmt(s['calls_per_explanation'], '.1f')} model calls")
            lines.append(f"  Evaluations per second: {_fmt(s['evaluations_per_second'], '.1f')}")
            lines.append(f"  Model-bound fraction:   {_fmt(100 * s['model_bound'], '.1f')}% "
                         "(time in the model's forward / total time)")
            if not s["valid"]:
                lines.append(f"  !!! ANSWERS DIFFER FROM {base.upper()}: these timings are NOT VALID"
                             + ("" if s["exact"] else " (inexact float16 variant)"))
            lines.append("")
        # Per-photo medians.
        photos = list(dict.fromkeys(p for s in per_mode.values() for p in s["photos"]))
        if photos:
            width = max(12, *(len(n) + 2 for n in names))
            header = f"{'photo (segments)':<22}" + "".join(f"{n:>{width}}" for n in names)
            lines += ["Median seconds per explanation [model evaluations]:", header]
            for p in photos:
                seg = next((s["photos"][p]["n_segments"] for s in per_mode.values() if p in s["photos"]), "?")
                cells = []
                for n in names:
                    cell = per_mode[n]["photos"].get(p)
                    cells.append(f"{cell['median_seconds']:.3f} [{cell['evaluations']:.0f}]" if cell else "-")
                lines.append(f"{f'{p} ({seg})':<22}" + "".join(f"{c:>{width}}" for c in cells))
            lines.append("")
    lines.append(answers_line(summary, mismatches, labels))
    return "\n".join(lines)


def answers_line(summary: dict, mismatches: list[dict], labels: Sequence[str] | None = None) -> str:
    if not mismatches:
        n = sum(len(s["photos"]) for per_mode in summary.values() for s in per_mode.values())
        return (f"ANSWERS: every implementation returned the same counterfactual on every photo "
                f"({n} implementation x photo x mode checks, every round).")
    lines = [f"ANSWERS: !!! NOT every implementation returned the same counterfactual "
             f"({len(mismatches)} mismatch(es)):"]
    lines += ["  " + format_mismatch(m, labels) for m in mismatches]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


CPU_FLAGS = ("avx2", "fma", "avx512f")
"""The vector extensions that decide a CPU runtime's kernels (ONNX Runtime, oneDNN)."""


def _cpu_flags() -> dict[str, bool] | None:
    """Which of :data:`CPU_FLAGS` the CPU has (``/proc/cpuinfo``); None where that cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return {flag: flag in have for flag in CPU_FLAGS}
    except OSError:
        pass
    return None


def machine_info(device: torch.device) -> dict:
    """CPU (model and vector extensions), cores, threads, library versions and the device name."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": _cpu_model(),
        "cuda": torch.version.cuda,
        "cudnn": None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        from .. import __version__
        info["sedc"] = __version__
    except ImportError:  # pragma: no cover
        info["sedc"] = None
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def format_machine(info: dict) -> str:
    load = info.get("load_average")
    flags = info.get("cpu_flags")
    extensions = "" if not flags else " (" + ", ".join(
        flag if has else f"no {flag}" for flag, has in flags.items()) + ")"
    return "\n".join([
        f"Machine: {info['cpu_model']}{extensions}; {info['cpu_count']} CPU cores (os.cpu_count), "
        f"{info['torch_threads']} torch threads"
        + (f", load average {load[0]:.2f}" if load else ""),
        f"Device:  {info['device']} = {info['device_name']}"
        + (f" (CUDA {info['cuda']}, cuDNN {info['cudnn']})" if info["device"].startswith("cuda") else ""),
        f"Software: torch {info['torch']}, numpy {info['numpy']}, python {info['python']}"
        + (f", onnxruntime {info['onnxruntime']}" if info.get("onnxruntime") else "")
        + f", sedc {info.get('sedc')}",
    ])


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

def plot_comparison(section: dict, axes: Sequence[Any]) -> None:
    summary = section["summary"]
    modes = list(summary)
    names = list(dict.fromkeys(n for per_mode in summary.values() for n in per_mode))
    width = 0.8 / max(1, len(modes))
    x = np.arange(len(names))
    panels = [("mean", "seconds per round (all photos)", "Time per implementation"),
              ("evaluations_per_second", "model evaluations / s", "Evaluations per second"),
              ("model_bound", "fraction of time in the model", "Model-bound fraction")]
    for ax, (key, ylabel, title) in zip(axes, panels):
        for k, mode in enumerate(modes):
            per_mode = summary[mode]
            values = [per_mode.get(n, {}).get(key, math.nan) for n in names]
            errors = None
            if key == "mean":  # standard deviation, the lower bar clipped at zero
                std = [per_mode.get(n, {}).get("std", 0.0) or 0.0 for n in names]
                errors = [[min(s, v) if not math.isnan(v) else 0.0 for s, v in zip(std, values)], std]
            bars = ax.bar(x + (k - (len(modes) - 1) / 2) * width, values, width, yerr=errors,
                          capsize=3, label=mode)
            for bar, n in zip(bars, names):
                if n in per_mode and not per_mode[n]["valid"]:
                    bar.set_hatch("//")
                    bar.set_edgecolor("red")
                    ax.annotate("MISMATCH", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", color="red", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if key == "model_bound":
            ax.set_ylim(0, 1.05)
        if len(modes) > 1:
            ax.legend(fontsize=7)


def plot_scaling(section: dict, axes: Sequence[Any]) -> None:
    points = section["points"]
    segs = [p["n_segments"] for p in points]
    for ax, key, ylabel, title in ((axes[0], "seconds", "seconds per explanation", "Time vs segments"),
                                   (axes[1], "evaluations", "model evaluations", "Evaluations vs segments")):
        for name in ("original", "explain"):
            xs = [s for s, p in zip(segs, points) if name in p]
            ys = [p[name][key] for p in points if name in p]
            if not xs:
                continue
            line, = ax.plot(xs, ys, marker="o", label=name)
            capped = [(s, p[name][key]) for s, p in zip(segs, points) if name in p and p[name]["capped"]]
            if capped:
                ax.scatter(*zip(*capped), marker="x", s=80, color=line.get_color(), zorder=3,
                           label=f"{name}: reached max_evals cap")
        ax.set_xlabel("number of segments (SLIC)")
        ax.set_ylabel(ylabel)
        ax.set_yscale("log")
        ax.set_title(f"{title} ({section['photo']}, {section['mode']})")
        ax.legend(fontsize=7)


#: case name -> (run function, plot function or None, number of panels in its plot row)
def write_plot(path: str | Path, results: dict, title: str, cases: dict) -> None:
    """One row of panels per case that has a plot (Agg; no pyplot state).

    ``cases`` maps a case name to ``(run, plot or None, number of panels)``.
    """
    from matplotlib.figure import Figure

    rows = [(name, cases[name]) for name in results if name in cases and cases[name][1] and cases[name][2]]
    if not rows:
        return
    ncols = max(spec[2] for _, spec in rows)
    fig = Figure(figsize=(5 * ncols, 4.2 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for row, (name, (_, plot, n)) in enumerate(rows):
        plot(results[name], axes[row][:n])
        for ax in axes[row][n:]:
            ax.set_visible(False)
    fig.suptitle(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


