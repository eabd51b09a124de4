"""The overhead case: what ``sedc.explain`` pays per model evaluation against the model alone.

For each runtime (torch, and ONNX Runtime on the CPU where it is installed), interleaved rounds
after ``ctx.warmup_rounds`` warm-up rounds; in a round, for each photo in turn, two
measurements, so that both see the same moment of a shared machine:

- **the model alone**: the runtime's own forward calls on a batch of that photo repeated, at
  each batch size of :data:`ALONE_BATCHES`, the best of :data:`ALONE_CALLS` calls each (after
  one more); the round's figure for a size is the median over the photos (ONNX Runtime:
  ``session.run`` on a contiguous float32 array; torch: the module under ``inference_mode``, in
  the memory format ``explain`` feeds it);
- **explain**: ``sedc.explain`` with its defaults (``batch_size="auto"``, the ``verify``
  check) on that photo, one classifier object for all rounds, as a user would call it; the
  round's cost per evaluation is its seconds over every evaluation it made (the checks' too).

The ratio is the model's best per-image cost alone (the batch size whose median over the
rounds is lowest) over explain's median cost per evaluation: 1.0 means explain costs nothing
beyond the model's own best. (The JSON also has the ratio to the median of each round's
fastest size, which a noisy machine's lucky calls push down.) The batch size ``"auto"`` picked is
read from each :attr:`sedc.Explanation.batch_size`; ``explain_many`` on a fresh classifier
object (nothing remembered) runs once per runtime after the rounds, to show what it picks.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from .measure import RULE, Context, onnxruntime_installed

ALONE_BATCHES = (1, 2, 4, 8)
ALONE_CALLS = 3
TARGET_RATIO = 0.9  # issue 17: the accelerated path at >= 90% of ONNX Runtime alone


def case_overhead(ctx: Context) -> dict:
    """Interleaved rounds of the model alone and explain, per runtime; prints and returns the section."""
    runtimes = overhead_runtimes(ctx)
    rounds = [-1] * ctx.warmup_rounds + list(range(ctx.repeats))
    ctx.print(f"\nOverhead: {', '.join(runtimes)}; the model alone at batch {', '.join(map(str, ALONE_BATCHES))} "
              f"(best of {ALONE_CALLS} calls) against explain on {len(ctx.photos)} photo(s), mode "
              f"{ctx.modes[0]}; {ctx.warmup_rounds} warm-up + {ctx.repeats} interleaved round(s)")
    runs: dict[str, list[dict]] = {name: [] for name in runtimes}
    for r in rounds:
        for name, classifier in runtimes.items():
            run = {"round": r, **time_round(classifier, ctx)}
            runs[name].append(run)
            ctx.print(f"  {'warm-up' if r < 0 else f'round {r}':<8} {name:<12} alone "
                      + " / ".join(f"{1000 * run['alone'][b]:.2f}" for b in ALONE_BATCHES)
                      + f" ms per image; explain {1000 * run['per_evaluation']:.2f} ms per evaluation, "
                      f"batch {run['batch_sizes']}")
    many = {name: time_many(fresh_copy(classifier), ctx) for name, classifier in runtimes.items()}
    summary = {name: summarize_overhead(runs[name], many[name]) for name in runtimes}
    ctx.print(format_overhead(summary, ctx.repeats))
    return {"runtimes": list(runtimes), "alone_batches": list(ALONE_BATCHES), "alone_calls": ALONE_CALLS,
            "mode": ctx.modes[0], "photos": [p.name for p in ctx.photos], "target_ratio": TARGET_RATIO,
            "runs": runs, "explain_many": many, "summary": summary, "ok": True}


def overhead_runtimes(ctx: Context) -> dict[str, Any]:
    """runtime name -> the bare classifier (not the timing proxy): torch, and ONNX Runtime on the CPU."""
    module = ctx.models["default"].module
    out: dict[str, Any] = {}
    if ctx.device.type == "cpu" and onnxruntime_installed():
        proxy = ctx.models.get("onnxruntime")
        if proxy is not None:
            out["onnxruntime"] = proxy.module
        else:
            from ..models.runtime import accelerate

            out["onnxruntime"] = accelerate(module, (3, ctx.input_size, ctx.input_size))
    out["torch"] = module
    return out


def fresh_copy(classifier: Any) -> Any:
    """Another object computing the same scores, for which no batch size is remembered."""
    from ..models.runtime import OnnxClassifier

    if isinstance(classifier, OnnxClassifier):
        return OnnxClassifier(classifier.path, classifier.input_shape, threads=classifier.threads)
    return copy.deepcopy(classifier)


def time_round(classifier: Any, ctx: Context) -> dict[str, Any]:
    """One round: for each photo, the model alone (:func:`time_alone`), then explain on it."""
    from ..core.explain import explain

    alone: dict[int, list[float]] = {size: [] for size in ALONE_BATCHES}
    seconds, evaluations, sizes = 0.0, 0, []
    for photo in ctx.photos:
        tensor = photo.to(ctx.device).tensor
        for size, cost in time_alone(classifier, tensor, ctx).items():
            alone[size].append(cost)
        start = time.perf_counter()
        e = explain(tensor, classifier, photo.segments, mode=ctx.modes[0], device=ctx.device)
        seconds += time.perf_counter() - start
        evaluations += e.n_evaluations + e.n_check_evaluations
        sizes.append(e.batch_size)
    return {"alone": {size: statistics.median(costs) for size, costs in alone.items()}, "seconds": seconds,
            "evaluations": evaluations, "per_evaluation": seconds / evaluations, "batch_sizes": sizes}


def time_alone(classifier: Any, image: torch.Tensor, ctx: Context) -> dict[int, float]:
    """Best seconds per image of the runtime's own forward call at each batch size of :data:`ALONE_BATCHES`."""
    call = forward_call(classifier, ctx)
    out = {}
    for size in ALONE_BATCHES:
        run = call(image.expand(size, -1, -1, -1))
        run()  # a new batch shape pays one-off costs
        out[size] = min(_seconds(run) for _ in range(ALONE_CALLS)) / size
    return out


def forward_call(classifier: Any, ctx: Context) -> Callable[[torch.Tensor], Callable[[], Any]]:
    """``batch -> zero-argument call``: the runtime's forward on ``batch``, prepared as explain feeds it."""
    from ..base.options import ExplainOptions
    from ..core.engine import use_channels_last

    session = getattr(classifier, "session", None)
    if session is not None:  # ONNX Runtime itself: no torch on the way
        feed = session.get_inputs()[0].name

        def onnx(batch: torch.Tensor) -> Callable[[], Any]:
            array = np.ascontiguousarray(batch.cpu().numpy(), dtype=np.float32)
            return lambda: session.run(None, {feed: array})
        return onnx
    channels_last = use_channels_last(ExplainOptions(), classifier, ctx.device)

    def module(batch: torch.Tensor) -> Callable[[], Any]:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        batch = batch.contiguous(memory_format=layout)

        def run() -> Any:
            with torch.inference_mode():
                out = classifier(batch)
            if ctx.device.type == "cuda":
                torch.cuda.synchronize(ctx.device)
            return out
        return run
    return module


def time_many(classifier: Any, ctx: Context) -> dict[str, Any]:
    """``explain_many`` on every photo in one process, on a classifier nothing is remembered for."""
    from ..scale import explain_many

    call = forward_call(classifier, ctx)
    call(ctx.photos[0].to(ctx.device).tensor)()  # opens an ONNX Runtime session outside the clock
    start = time.perf_counter()
    results = explain_many([p.to(ctx.device).tensor for p in ctx.photos], classifier,
                           [p.segments for p in ctx.photos], mode=ctx.modes[0], device=ctx.device)
    seconds = time.perf_counter() - start
    evaluations = sum(e.n_evaluations + e.n_check_evaluations for e in results)
    return {"seconds": seconds, "evaluations": evaluations, "per_evaluation": seconds / evaluations,
            "batch_sizes": [e.batch_size for e in results]}


def summarize_overhead(runs: list[dict], many: dict) -> dict[str, Any]:
    """Medians of the timed rounds: the model alone per batch size, its best, explain, the ratio."""
    timed = [run for run in runs if run["round"] >= 0] or runs
    alone = {b: statistics.median(run["alone"][b] for run in timed) for b in ALONE_BATCHES}
    best = min(alone.values())  # the best size's median: a minimum over sizes of per-round noise is luck
    per_evaluation = statistics.median(run["per_evaluation"] for run in timed)
    luckiest = statistics.median(min(run["alone"].values()) for run in timed)
    return {"alone_per_image": alone, "alone_best": best,
            "alone_best_batch": min(alone, key=alone.get), "explain_per_evaluation": per_evaluation,
            "ratio": best / per_evaluation, "alone_best_of_each_round": luckiest,
            "ratio_to_best_of_each_round": luckiest / per_evaluation,
            "explain_batch_sizes": [run["batch_sizes"] for run in runs],
            "explain_many_batch_sizes": many["batch_sizes"],
            "explain_many_per_evaluation": many["per_evaluation"]}


def format_overhead(summary: dict[str, dict], repeats: int) -> str:
    """The case's table: per runtime, the model alone, explain, the ratio and the sizes auto picked."""
    lines = ["", RULE, f"OVERHEAD: explain's cost per evaluation against the model alone (median of "
             f"{repeats} round(s))", RULE,
             f"{'runtime':<12} {'alone ms/image at ' + '/'.join(map(str, ALONE_BATCHES)):<34} {'best':>6} "
             f"{'explain ms/eval':>16} {'ratio':>6}  auto picked: explain (first call; later) | explain_many"]
    for name, s in summary.items():
        alone = " / ".join(f"{1000 * s['alone_per_image'][b]:.2f}" for b in ALONE_BATCHES)
        first, later = s["explain_batch_sizes"][0], s["explain_batch_sizes"][1:]
        lines.append(f"{name:<12} {alone:<34} {1000 * s['alone_best']:6.2f} "
                     f"{1000 * s['explain_per_evaluation']:16.2f} {s['ratio']:6.3f}  {first}; "
                     f"{sorted({b for sizes in later for b in sizes})} | {s['explain_many_batch_sizes']}")
    lines.append(f"ratio = the model's best cost per image alone (the batch size with the lowest median) / "
                 f"explain's cost per evaluation (1.0: no overhead); target >= {TARGET_RATIO} on ONNX Runtime: "
                 + (("met" if summary["onnxruntime"]["ratio"] >= TARGET_RATIO else "NOT met")
                    if "onnxruntime" in summary else "not measured (no ONNX Runtime here)"))
    return "\n".join(lines)


def _seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
