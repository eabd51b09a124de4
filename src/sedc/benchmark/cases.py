"""The benchmark cases: comparison, scaling, throughput, inpaint, search and overhead (a function
each, in :data:`CASES`; search lives in :mod:`sedc.benchmark.search`, overhead in
:mod:`sedc.benchmark.overhead`)."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..base.errors import InputError
from ..imaging.samples import DEMO_PHOTOS, as_rgb_float, sample_photos
from .measure import (
    BASELINE,
    IMPLEMENTATIONS,
    RULE,
    SCALING_PHOTO,
    THROUGHPUT_IMAGES,
    Answer,
    Context,
    Photo,
    RunRecord,
    synchronize,
    timed_run,
)
from .report import (
    _fmt,
    _ratio,
    find_mismatches,
    format_mismatch,
    format_summary,
    plot_comparison,
    plot_scaling,
    summarize,
)
from .overhead import case_overhead
from .search import case_search

# --------------------------------------------------------------------------------------------
# Photos and segments
# --------------------------------------------------------------------------------------------

def load_photos(images: Sequence[str] | None, size: int, names: Sequence[str] = DEMO_PHOTOS
                ) -> list[tuple[str, np.ndarray]]:
    """The named scikit-image photos, or image files, resized to ``size`` x ``size`` (float32)."""
    if images:
        from ..imaging.io import load_image

        out = []
        for path in images:
            out.append((Path(path).stem, as_rgb_float(load_image(path), size)))
        return out
    return sample_photos(names, size)


def quickshift_segments(array: np.ndarray) -> np.ndarray:
    """quickshift(kernel_size=4, max_dist=200, ratio=0.2), the paper's setting."""
    return _segment(array, "quickshift")


def slic_segments(array: np.ndarray, n_segments: int) -> np.ndarray:
    return _segment(array, "slic", n_segments=n_segments)


def _segment(array: np.ndarray, method: str, **params: Any) -> np.ndarray:
    try:
        from ..imaging.segmentation import segment
    except ImportError:
        segment = None
    if segment is not None:
        labels = segment(array, method, **params)
        if isinstance(labels, torch.Tensor):
            labels = labels.detach().cpu().numpy()
        return np.ascontiguousarray(np.asarray(labels).astype(np.int64))
    from skimage import segmentation as sk

    if method == "quickshift":
        labels = sk.quickshift(array, **params)
    elif method == "slic":
        labels = sk.slic(array, start_label=0, **{"compactness": 10.0, "sigma": 1.0, **params})
    else:  # pragma: no cover
        raise InputError(method)
    return np.ascontiguousarray(labels.astype(np.int64))


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

def case_comparison(ctx: Context) -> dict:
    """Interleaved rounds of every implementation on every photo; summary and answers check."""
    impls = [IMPLEMENTATIONS[n] for n in ctx.implementations]
    baseline = BASELINE if BASELINE in ctx.implementations else ctx.implementations[0]
    photos = [p.to(ctx.device) for p in ctx.photos]
    runs: list[RunRecord] = []
    rounds = [-1] * ctx.warmup_rounds + list(range(ctx.repeats))
    total = len(rounds) * len(ctx.modes) * len(photos) * len(impls)
    done = 0
    ctx.print(f"\nComparison: {len(impls)} implementation(s) x {len(photos)} photo(s) x "
              f"{len(ctx.modes)} mode(s); {ctx.warmup_rounds} warm-up round(s) + {ctx.repeats} timed, "
              "interleaved")
    for mode in ctx.modes:
        for r in rounds:
            for photo in photos:
                for impl in impls:
                    run = timed_run(ctx, impl, photo, mode, r)
                    runs.append(run)
                    done += 1
                    ctx.print(f"  [{done}/{total}] {mode:<6} {'warm-up' if r < 0 else f'round {r}':<8} "
                              f"{photo.name:<10} {impl.name:<13} {run.seconds:8.3f} s  "
                              f"{run.model_evaluations:5d} evals  {100 * _ratio(run.model_seconds, run.seconds):5.1f}% "
                              f"model  {run.answer.describe(ctx.labels)}")
    exact = {impl.name: impl.exact for impl in impls}
    mismatches = find_mismatches(runs, baseline)
    summary = summarize(runs, baseline, mismatches, exact)
    for m in mismatches:
        ctx.print(format_mismatch(m, ctx.labels))
    ctx.print(format_summary(summary, mismatches, baseline, ctx.labels))
    failing = [m for m in mismatches if exact.get(m["implementation"], True)]
    return {
        "baseline": baseline,
        "implementations": {impl.name: {"description": impl.description, "exact": impl.exact,
                                        "runtime": impl.runtime} for impl in impls},
        "photos": [{"name": p.name, "n_segments": p.n_segments, "shape": list(p.array.shape)} for p in photos],
        "rounds": {"warmup": ctx.warmup_rounds, "timed": ctx.repeats, "order": "interleaved"},
        "time_unit": "seconds per round (all photos once, summed)",
        "runs": [r.to_dict() for r in runs],
        "summary": summary,
        "mismatches": mismatches,
        "all_match": not mismatches,
        "ok": not failing,
    }


def case_scaling(ctx: Context) -> dict:
    """Time and evaluations against the number of SLIC segments, original vs explain."""
    args = ctx.args
    mode = ctx.modes[0]
    cap = args.scaling_max_evals
    explain_cap = args.scaling_explain_max_evals or 10 * cap
    source = ctx.photos[0] if args.images else next(
        (p for p in ctx.photos if p.name == SCALING_PHOTO), ctx.photos[0])
    names = [n for n in ("original", "explain") if n in IMPLEMENTATIONS]
    caps = {"original": cap, "explain": explain_cap}
    ctx.print(f"\nScaling: {', '.join(names)} on {source.name} (mode {mode}), SLIC n_segments "
              f"{', '.join(map(str, args.scaling_segments))}; max_evals caps: original {cap}, "
              f"explain {explain_cap}; one run per point")
    points, runs = [], []
    for requested in args.scaling_segments:
        segments = slic_segments(source.array, requested)
        photo = Photo(source.name, source.array, segments).to(ctx.device)
        point: dict[str, Any] = {"requested": requested, "n_segments": photo.n_segments}
        for name in names:
            run = timed_run(ctx, IMPLEMENTATIONS[name], photo, mode, 0, max_evals=caps[name])
            runs.append(run)
            point[name] = {"seconds": run.seconds, "model_seconds": run.model_seconds,
                           "evaluations": run.model_evaluations, "calls": run.model_calls,
                           "capped": run.capped, "cap": caps[name], "answer": asdict(run.answer)}
            ctx.print(f"  n_segments {requested:>4} -> {photo.n_segments:>4}  {name:<9} {run.seconds:8.3f} s  "
                      f"{run.model_evaluations:6d} evals{'  REACHED THE CAP' if run.capped else ''}  "
                      f"{run.answer.describe(ctx.labels)}")
        o, e = point.get("original"), point.get("explain")
        if o and e:
            a, b = Answer(**o["answer"]), Answer(**e["answer"])
            same = a.found and b.found and a.key == b.key
            if o["capped"] or e["capped"]:
                # A capped search is incomplete: its answer may legitimately differ.
                point["answers"] = ("match (a run reached its cap)" if same
                                    else "not compared (a run reached its max_evals cap)")
            else:
                point["answers"] = "match" if a.key == b.key else "MISMATCH"
            # A capped original is a lower bound of its time; a capped explain makes it meaningless.
            point["speedup"] = math.nan if e["capped"] else _ratio(o["seconds"], e["seconds"])
            point["speedup_is_lower_bound"] = bool(o["capped"] and not e["capped"])
        points.append(point)
    ctx.print(format_scaling(points, source.name, mode))
    return {"photo": source.name, "mode": mode, "segmentation": "slic", "caps": caps, "points": points,
            "runs": [r.to_dict() for r in runs],
            "ok": all(p.get("answers") != "MISMATCH" for p in points)}


def format_scaling(points: list[dict], photo: str, mode: str) -> str:
    lines = ["", RULE, f"SCALING WITH THE NUMBER OF SEGMENTS ({photo}, mode {mode}, SLIC)", RULE,
             f"{'requested':>9} {'segments':>8} {'original s':>11} {'evals':>7} {'explain s':>10} "
             f"{'evals':>7} {'speedup':>8}  answers"]
    any_cap = False
    for p in points:
        o, e = p.get("original"), p.get("explain")

        def cell(x: dict | None, width: int) -> tuple[str, str]:
            nonlocal any_cap
            if not x:
                return "-".rjust(width), "-".rjust(7)
            any_cap |= x["capped"]
            return f"{x['seconds']:.3f}".rjust(width), (f"{x['evaluations']}" + ("*" if x["capped"] else "")).rjust(7)
        os_, oe = cell(o, 11)
        es, ee = cell(e, 10)
        lines.append(f"{p['requested']:>9} {p['n_segments']:>8} {os_} {oe} {es} {ee} "
                     f"{('>=' if p.get('speedup_is_lower_bound') else '') + _fmt(p.get('speedup', math.nan), '.2f'):>7}x"
                     f"  {p.get('answers', '-')}")
    if any_cap:
        lines.append("* reached its max_evals cap: the search was cut short (its time is a lower bound, "
                     "hence '>=' speedups; its answer, if any, may differ from the uncapped one)")
    return "\n".join(lines)


def throughput_images(ctx: Context, count: int = THROUGHPUT_IMAGES) -> list[tuple[str, np.ndarray]]:
    """``count`` distinct images made from the photos: originals, mirrors, crops, mirrored crops."""
    size = ctx.input_size
    variants = [
        ("", lambda a: a),
        ("-mirror", lambda a: a[:, ::-1]),
        ("-crop", lambda a: as_rgb_float(a[size // 8: -size // 8, size // 8: -size // 8], size)),
        ("-mirror-crop", lambda a: as_rgb_float(a[size // 8: -size // 8, size // 8: -size // 8][:, ::-1], size)),
    ]
    out = [(p.name + suffix, np.ascontiguousarray(f(p.array), dtype=np.float32))
           for suffix, f in variants for p in ctx.photos]
    return (out * (count // max(1, len(out)) + 1))[:count]


THROUGHPUT_VARIANTS = ("loop", "many", "workers")
"""Short names of the throughput variants (``--throughput-variants``), in the runners' order."""


def _throughput_runners(ctx: Context) -> dict[str, Callable[[list[np.ndarray], str], list[Any]]]:
    """The throughput variants: an explain loop, explain_many, and two worker processes."""
    from ..core.explain import explain
    from ..scale import explain_many

    module = ctx.models["default"].module
    options = dict(max_time=ctx.args.throughput_max_time)
    workers = ([f"cuda:{i}" for i in range(torch.cuda.device_count())] if ctx.device.type == "cuda"
               else ["cpu", "cpu"])
    if ctx.device.type == "cuda" and len(workers) < 2:
        workers = workers * 2
    runners = {
        "explain loop": lambda images, mode: [explain(i, module, mode=mode, **options) for i in images],
        "explain_many": lambda images, mode: explain_many(images, module, mode=mode, **options),
        f"{len(workers)} workers": lambda images, mode: explain_many(images, module, mode=mode, devices=workers,
                                                                       **options),
    }
    wanted = getattr(ctx.args, "throughput_variants", None) or THROUGHPUT_VARIANTS
    return {name: run for (short, (name, run)) in zip(THROUGHPUT_VARIANTS, runners.items()) if short in wanted}



def case_throughput(ctx: Context) -> dict:
    """Images per minute for a loop of explain, explain_many, and two worker processes.

    Segmentation (quickshift) is part of the timed work: explain_many overlaps it with the
    model, the loop does not. Rounds are interleaved; answers must agree across variants.
    ``--throughput-warmup`` rounds come first and are left out of the medians (their times are
    reported as ``warmup_seconds``): on a GPU the first calls of each batch shape carry a
    one-time setup. Worker processes start afresh in every round, so they get no warm-up round.
    """
    images = throughput_images(ctx, ctx.args.throughput_images)
    mode = ctx.modes[0]
    runners = _throughput_runners(ctx)
    warmup = getattr(ctx.args, "throughput_warmup", 0)
    ctx.print(f"\nThroughput: {len(images)} images (mode {mode}, quickshift, max_time "
              f"{ctx.args.throughput_max_time} s each), {', '.join(runners)}; "
              + (f"{warmup} warm-up round(s) (not for workers) + " if warmup else "")
              + f"{ctx.args.throughput_repeats} interleaved round(s)")
    arrays = [a for _, a in images]
    timings: dict[str, list[float]] = {name: [] for name in runners}
    cold: dict[str, list[float]] = {name: [] for name in runners}
    answers: dict[str, list] = {}
    for r in [-1] * warmup + list(range(ctx.args.throughput_repeats)):
        for name, run in runners.items():
            if r < 0 and name.endswith(" workers"):
                continue
            synchronize(ctx.device)
            start = time.perf_counter()
            results = run(arrays, mode)
            synchronize(ctx.device)
            seconds = time.perf_counter() - start
            (cold if r < 0 else timings)[name].append(seconds)
            answers[name] = [(tuple(e.removed), int(e.new_class), e.stop_reason) for e in results]
            ctx.print(f"  {'warm-up' if r < 0 else f'round {r}':<8} {name:<14} {seconds:8.2f} s  "
                      f"{60 * len(images) / seconds:7.1f} images/min")
    baseline = next(iter(runners))
    match = {name: answers[name] == answers[baseline] for name in runners}
    summary = {name: {"median_seconds": statistics.median(ts), "seconds": ts,
                      "images_per_minute": 60 * len(images) / statistics.median(ts),
                      "speedup_vs_loop": statistics.median(timings[baseline]) / statistics.median(ts),
                      "warmup_seconds": cold[name],
                      "answers_match_loop": match[name]} for name, ts in timings.items()}
    lines = ["", RULE, f"THROUGHPUT ({len(images)} images, mode {mode}, median of "
             f"{ctx.args.throughput_repeats} round(s){' after the warm-up' if warmup else ''})", RULE]
    for name, row in summary.items():
        lines.append(f"  {name:<14} {row['images_per_minute']:7.1f} images/min  "
                     f"{row['speedup_vs_loop']:5.2f}x the loop  answers "
                     f"{'match' if row['answers_match_loop'] else 'DIFFER'}"
                     + (f"  (warm-up {', '.join(f'{t:.2f}' for t in cold[name])} s)" if cold[name] else ""))
    ctx.print("\n".join(lines))
    return {"images": [n for n, _ in images], "mode": mode, "summary": summary,
            "ok": all(match.values())}


def case_inpaint(ctx: Context) -> dict:
    """Inpainting fills: PyTorch-native harmonic (all segments at once, on the device) vs OpenCV.

    OpenCV inpaints each segment separately on the CPU (Navier-Stokes, radius 3), as the original
    code does; ``harmonic`` solves every segment in one batched relaxation on ``ctx.device``.
    Rounds are interleaved; times are per photo (the fill of every segment).
    """
    from ..core.perturbation import make_fill

    photos = ctx.photos
    variants = {"opencv (ns)": "inpaint", "harmonic": "harmonic"}
    ctx.print(f"\nInpaint: {', '.join(variants)} on {len(photos)} photo(s) "
              f"({', '.join(f'{p.name} {p.n_segments} segments' for p in photos)}), "
              f"{ctx.repeats} interleaved round(s) after a warm-up")
    tensors = [(p, p.to(ctx.device).tensor, torch.from_numpy(p.segments).to(ctx.device)) for p in photos]
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(ctx.repeats + 1):
        for name, mode in variants.items():
            synchronize(ctx.device)
            start = time.perf_counter()
            for _, image, segments in tensors:
                make_fill(image, segments, mode)
            synchronize(ctx.device)
            if r:  # round 0 warms up (CUDA kernels, OpenCV)
                timings[name].append((time.perf_counter() - start) / len(tensors))
    medians = {name: statistics.median(ts) for name, ts in timings.items()}
    speedup = _ratio(medians["opencv (ns)"], medians["harmonic"])
    lines = ["", RULE, f"INPAINT (seconds per photo, median of {ctx.repeats} round(s))", RULE]
    lines += [f"  {name:<12} {medians[name] * 1000:9.1f} ms" for name in variants]
    lines.append(f"  harmonic is {speedup:.1f}x OpenCV on {ctx.device}")
    ctx.print("\n".join(lines))
    return {"photos": [p.name for p in photos], "seconds_per_photo": timings, "median": medians,
            "speedup_harmonic_vs_opencv": speedup, "ok": True}


CASES: dict[str, tuple[Callable[[Context], dict], Callable[[dict, Sequence[Any]], None] | None, int]] = {
    "comparison": (case_comparison, plot_comparison, 3),
    "scaling": (case_scaling, plot_scaling, 2),
    "throughput": (case_throughput, None, 0),
    "inpaint": (case_inpaint, None, 0),
    "search": (case_search, None, 0),
    "overhead": (case_overhead, None, 0),
}
