"""``sedc benchmark``: time SEDC implementations against the original, and check their answers.

Cases (a function each, registered in :data:`CASES`; ``--cases`` picks them):

``comparison`` (default)
    Every implementation explains the same photos, with the same segments and the same model.
    Rounds are interleaved (A B C D, A B C D, ...) after one warm-up round, so slow drifts of a
    shared machine hit every implementation alike. A *round* is one implementation explaining
    every photo once; the reported times are seconds per round (summed over the photos), and
    "per explanation" divides by the number of photos. Speedup is ``mean(original) / mean(x)``;
    median speedup is ``median(original) / median(x)``.

``scaling`` (``--scaling``)
    Time and model evaluations against the number of segments (SLIC, n_segments = 25, 50, 100,
    200 on one photo) for ``original`` and ``explain``. ``original`` is capped at
    ``--scaling-max-evals`` evaluations per run (``explain`` at ``--scaling-explain-max-evals``);
    a run that hits its cap is flagged and its answer is not compared.

``throughput`` (``--throughput``)
    Placeholder for the images-per-minute case (explain loop vs explain_many vs workers).

Every run goes through :class:`TimedModel`, an ``nn.Module`` proxy that times the model's
forward calls (synchronising CUDA) and counts the rows it evaluates, so the *model-bound
fraction* (time in forward / total time) and the evaluations are measured the same way for every
implementation.

An implementation's timings are valid only if its answers (sorted segments and new class) equal
the baseline's (``original``) on every photo and every round; a mismatch is printed loudly,
written to the JSON, and (for exact implementations) makes the exit status 1.

To add a case: write ``case_name(ctx: Context) -> dict`` (it prints its own report and returns its
JSON section), optionally ``plot_name(section, axes_row)``, and register both in :data:`CASES`.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "CASES",
    "IMPLEMENTATIONS",
    "Answer",
    "Context",
    "Implementation",
    "Photo",
    "RunRecord",
    "TimedModel",
    "find_mismatches",
    "format_summary",
    "machine_info",
    "main",
    "summarize",
]

DEFAULT_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
#: The ``--quick`` photo: the fewest model evaluations of the four in every mode we measured
#: (mean mode: astronaut 35, rocket 68, coffee 111, chelsea 218; identical across implementations).
QUICK_PHOTO = "astronaut"
#: The ``--scaling`` photo when ``--images`` is not given.
SCALING_PHOTO = "coffee"
THROUGHPUT_IMAGES = 16
SCALING_SEGMENTS = (25, 50, 100, 200)
QUICKSHIFT = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}
BASELINE = "original"
SCHEMA = "sedc-benchmark/1"
RULE = "=" * 72


# --------------------------------------------------------------------------------------------
# Measuring the model
# --------------------------------------------------------------------------------------------

class TimedModel(nn.Module):
    """An ``nn.Module`` proxy that times and counts the forward calls of ``module``.

    ``module`` is a registered submodule, so ``parameters()``, ``buffers()`` and ``modules()``
    yield the wrapped model's (device and architecture detection keep working). On CUDA the
    clock is started and stopped after ``torch.cuda.synchronize()``, so ``seconds`` is the time
    the device spent in the model, not the time to queue it.

    Attributes
    ----------
    seconds : float
        Time spent inside ``forward`` since the last :meth:`reset`.
    calls, rows : int
        Forward calls and evaluated images (batch rows) since the last :meth:`reset`.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.eval()
        self.reset()

    def reset(self) -> None:
        """Zero the counters."""
        self.seconds = 0.0
        self.calls = 0
        self.rows = 0

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        cuda = isinstance(x, torch.Tensor) and x.is_cuda
        if cuda:
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        out = self.module(x, *args, **kwargs)
        if cuda:
            torch.cuda.synchronize(x.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.rows += int(x.shape[0]) if isinstance(x, torch.Tensor) and x.ndim > 0 else 1
        return out


def synchronize(device: torch.device) -> None:
    """Wait for ``device`` (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Data: photos, answers, runs
# --------------------------------------------------------------------------------------------

@dataclass
class Photo:
    """A benchmark image: (H, W, 3) float32 array in [0, 1], its segments and device tensor."""

    name: str
    array: np.ndarray
    segments: np.ndarray
    tensor: torch.Tensor | None = None

    @property
    def n_segments(self) -> int:
        return int(len(np.unique(self.segments)))

    def to(self, device: torch.device) -> "Photo":
        tensor = torch.from_numpy(np.ascontiguousarray(self.array.transpose(2, 0, 1)))[None].to(device)
        return Photo(self.name, self.array, self.segments, tensor)


@dataclass
class Answer:
    """What an implementation returned for one photo."""

    found: bool
    segments: list[int]
    new_class: int
    original_class: int
    n_evaluations: int | None = None
    stop_reason: str | None = None

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        """What must match between implementations: sorted segments and new class."""
        return tuple(sorted(int(s) for s in self.segments)), int(self.new_class)

    def describe(self, labels: Sequence[str] | None = None) -> str:
        name = f" ({labels[self.new_class]})" if labels and 0 <= self.new_class < len(labels) else ""
        if not self.found:
            return f"no counterfactual ({self.stop_reason or 'not found'}), class {self.new_class}{name}"
        return f"segments {list(self.key[0])} -> class {self.new_class}{name}"


@dataclass
class RunRecord:
    """One timed run: one implementation explaining one photo in one mode.

    ``round`` is -1 for warm-up runs (checked for answers, not used in the statistics).
    """

    mode: str
    implementation: str
    photo: str
    round: int
    seconds: float
    model_seconds: float
    model_calls: int
    model_evaluations: int
    answer: Answer
    n_segments: int | None = None
    cap: int | None = None

    @property
    def warmup(self) -> bool:
        return self.round < 0

    @property
    def capped(self) -> bool:
        """Whether a max_evals cap cut the search short (or may have: it stopped exactly at it)."""
        if self.answer.stop_reason == "max_evals":
            return True
        n = self.answer.n_evaluations if self.answer.n_evaluations is not None else self.model_evaluations
        return self.cap is not None and n >= self.cap

    def to_dict(self) -> dict:
        out = asdict(self)
        out["warmup"] = self.warmup
        out["capped"] = self.capped
        return out


@dataclass
class Implementation:
    """An SEDC implementation under test.

    ``run(photo, mode, ctx, max_evals)`` returns an :class:`Answer`; it must call the model held
    in ``ctx.models[model_key]``. ``exact`` implementations must reproduce the original exactly
    (a mismatch fails the benchmark); inexact ones (float16) are only marked invalid.
    """

    name: str
    description: str
    run: Callable[..., Answer]
    model_key: str = "default"
    exact: bool = True
    cuda_only: bool = False
    supports_max_evals: bool = False


# --------------------------------------------------------------------------------------------
# The implementations
# --------------------------------------------------------------------------------------------

def _run_original(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
    from .reference import TorchPredictor, sedc

    predictor = TorchPredictor(ctx.models["default"], ctx.device)
    r = sedc(photo.array, predictor, photo.segments, mode, max_evals=max_evals)
    return Answer(bool(r.found), [int(s) for s in r.segments_in_explanation], int(r.new_class),
                  int(r.predicted_class_index), int(r.n_evaluations), r.stop_reason)


def _tuple_answer(result: tuple) -> Answer:
    _, segments, _, new_class, predicted = result
    segments = [int(s) for s in segments]
    return Answer(bool(segments), segments, int(new_class), int(predicted))


def _run_pytorch(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
    from .compat import sedc_pytorch

    return _tuple_answer(sedc_pytorch(photo.tensor, ctx.models["default"], photo.segments, mode=mode,
                                      device=ctx.device))


def _run_batch(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
    from .compat import sedc_pytorch_batch

    return _tuple_answer(sedc_pytorch_batch(photo.tensor, ctx.models["default"], photo.segments,
                                            mode=mode, device=ctx.device, batch_size=8))


def _explain_answer(e: Any) -> Answer:
    return Answer(bool(e.found), [int(s) for s in e.segments], int(e.new_class), int(e.original_class),
                  int(e.n_evaluations), e.stop_reason)


def _explain_runner(model_key: str = "default", **options: Any) -> Callable[..., Answer]:
    def run(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
        from .engine import explain

        return _explain_answer(explain(photo.tensor, ctx.models[model_key], photo.segments, mode=mode,
                                       device=ctx.device, max_evals=max_evals, **options))
    return run


IMPLEMENTATIONS: dict[str, Implementation] = {
    impl.name: impl for impl in (
        Implementation("original", "sedc.reference.sedc: numpy, one model call per candidate",
                       _run_original, supports_max_evals=True),
        Implementation("pytorch", "sedc.sedc_pytorch: torch, one candidate per call", _run_pytorch),
        Implementation("batch", "sedc.sedc_pytorch_batch(batch_size=8)", _run_batch),
        Implementation("explain", "sedc.explain with its defaults (batch_size='auto', "
                       "channels_last='auto')", _explain_runner(), supports_max_evals=True),
        Implementation("explain-fp16", "sedc.explain(autocast=True): float16 on CUDA",
                       _explain_runner(autocast=True), exact=False, cuda_only=True,
                       supports_max_evals=True),
        Implementation("explain-cl", "sedc.explain(channels_last=True) with the model's weights in "
                       "channels-last memory format", _explain_runner("channels_last", channels_last=True),
                       model_key="channels_last", cuda_only=True, supports_max_evals=True),
    )
}


def default_implementations(device: torch.device) -> list[str]:
    return [name for name, impl in IMPLEMENTATIONS.items() if device.type == "cuda" or not impl.cuda_only]


# --------------------------------------------------------------------------------------------
# Context: everything a case needs
# --------------------------------------------------------------------------------------------

@dataclass
class Context:
    """Shared state of one benchmark invocation, handed to every case."""

    args: argparse.Namespace
    device: torch.device
    model_name: str
    labels: list[str]
    input_size: int
    models: dict[str, TimedModel]
    photos: list[Photo]
    modes: list[str]
    implementations: list[str]
    repeats: int
    warmup_rounds: int
    out: Any = sys.stdout
    results: dict[str, Any] = field(default_factory=dict)

    def print(self, *parts: Any) -> None:
        print(*parts, file=self.out, flush=True)


def timed_run(ctx: Context, impl: Implementation, photo: Photo, mode: str, round_index: int,
              max_evals: int | None = None) -> RunRecord:
    """Run ``impl`` on ``photo`` once and measure it."""
    model = ctx.models[impl.model_key]
    model.reset()
    synchronize(ctx.device)
    start = time.perf_counter()
    if impl.supports_max_evals:
        answer = impl.run(photo, mode, ctx, max_evals=max_evals)
    else:
        answer = impl.run(photo, mode, ctx)
    synchronize(ctx.device)
    seconds = time.perf_counter() - start
    if answer.n_evaluations is None:
        answer.n_evaluations = model.rows
    return RunRecord(mode, impl.name, photo.name, round_index, seconds, model.seconds, model.calls,
                     model.rows, answer, photo.n_segments, max_evals)


def warm_up_model(ctx: Context) -> None:
    """One forward call of every model variant (kernels, allocator, lazy init)."""
    x = torch.rand(2, 3, ctx.input_size, ctx.input_size, device=ctx.device)
    with torch.inference_mode():
        for model in ctx.models.values():
            model(x)
            model.reset()
    synchronize(ctx.device)


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


def machine_info(device: torch.device) -> dict:
    """CPU, cores, threads, library versions and the device name."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
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
        from . import __version__
        info["sedc"] = __version__
    except ImportError:  # pragma: no cover
        info["sedc"] = None
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def format_machine(info: dict) -> str:
    load = info.get("load_average")
    return "\n".join([
        f"Machine: {info['cpu_model']}; {info['cpu_count']} CPU cores (os.cpu_count), "
        f"{info['torch_threads']} torch threads"
        + (f", load average {load[0]:.2f}" if load else ""),
        f"Device:  {info['device']} = {info['device_name']}"
        + (f" (CUDA {info['cuda']}, cuDNN {info['cudnn']})" if info["device"].startswith("cuda") else ""),
        f"Software: torch {info['torch']}, numpy {info['numpy']}, python {info['python']}, "
        f"sedc {info.get('sedc')}",
    ])


# --------------------------------------------------------------------------------------------
# Photos and segments
# --------------------------------------------------------------------------------------------

def _resize(array: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    array = array[..., :3]
    out = resize(array, (size, size), anti_aliasing=True, preserve_range=False)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def load_photos(images: Sequence[str] | None, size: int, names: Sequence[str] = DEFAULT_PHOTOS
                ) -> list[tuple[str, np.ndarray]]:
    """The named scikit-image photos, or image files, resized to ``size`` x ``size`` (float32)."""
    if images:
        from .io import load_image

        out = []
        for path in images:
            out.append((Path(path).stem, _resize(load_image(path), size)))
        return out
    import skimage.data

    return [(name, _resize(getattr(skimage.data, name)(), size)) for name in names]


def quickshift_segments(array: np.ndarray) -> np.ndarray:
    """quickshift(kernel_size=4, max_dist=200, ratio=0.2), the paper's setting."""
    return _segment(array, "quickshift", **QUICKSHIFT)


def slic_segments(array: np.ndarray, n_segments: int) -> np.ndarray:
    return _segment(array, "slic", n_segments=n_segments)


def _segment(array: np.ndarray, method: str, **params: Any) -> np.ndarray:
    try:
        from .segmentation import segment
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
        raise ValueError(method)
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
        "implementations": {impl.name: {"description": impl.description, "exact": impl.exact}
                            for impl in impls},
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
        ("-crop", lambda a: _resize(a[size // 8: -size // 8, size // 8: -size // 8], size)),
        ("-mirror-crop", lambda a: _resize(a[size // 8: -size // 8, size // 8: -size // 8][:, ::-1], size)),
    ]
    out = [(p.name + suffix, np.ascontiguousarray(f(p.array), dtype=np.float32))
           for suffix, f in variants for p in ctx.photos]
    return (out * (count // max(1, len(out)) + 1))[:count]


def _throughput_runners(ctx: Context) -> dict[str, Callable[[list[np.ndarray], str], list[Any]]]:
    """The throughput variants: an explain loop, explain_many, and two worker processes."""
    from .engine import explain
    from .many import explain_many

    module = ctx.models["default"].module
    options = dict(max_time=ctx.args.throughput_max_time)
    workers = ([f"cuda:{i}" for i in range(torch.cuda.device_count())] if ctx.device.type == "cuda"
               else ["cpu", "cpu"])
    if ctx.device.type == "cuda" and len(workers) < 2:
        workers = workers * 2
    return {
        "explain loop": lambda images, mode: [explain(i, module, mode=mode, **options) for i in images],
        "explain_many": lambda images, mode: explain_many(images, module, mode=mode, **options),
        f"{len(workers)} workers": lambda images, mode: explain_many(images, module, mode=mode, devices=workers,
                                                                       **options),
    }


def case_throughput(ctx: Context) -> dict:
    """Images per minute for a loop of explain, explain_many, and two worker processes.

    Segmentation (quickshift) is part of the timed work: explain_many overlaps it with the
    model, the loop does not. Rounds are interleaved; answers must agree across variants.
    """
    images = throughput_images(ctx)
    mode = ctx.modes[0]
    runners = _throughput_runners(ctx)
    ctx.print(f"\nThroughput: {len(images)} images (mode {mode}, quickshift, max_time "
              f"{ctx.args.throughput_max_time} s each), {', '.join(runners)}; "
              f"{ctx.args.throughput_repeats} interleaved round(s)")
    arrays = [a for _, a in images]
    timings: dict[str, list[float]] = {name: [] for name in runners}
    answers: dict[str, list] = {}
    for r in range(ctx.args.throughput_repeats):
        for name, run in runners.items():
            synchronize(ctx.device)
            start = time.perf_counter()
            results = run(arrays, mode)
            synchronize(ctx.device)
            timings[name].append(time.perf_counter() - start)
            answers[name] = [(tuple(e.segments), int(e.new_class), e.stop_reason) for e in results]
            ctx.print(f"  round {r} {name:<14} {timings[name][-1]:8.2f} s  "
                      f"{60 * len(images) / timings[name][-1]:7.1f} images/min")
    baseline = next(iter(runners))
    match = {name: answers[name] == answers[baseline] for name in runners}
    summary = {name: {"median_seconds": statistics.median(ts), "seconds": ts,
                      "images_per_minute": 60 * len(images) / statistics.median(ts),
                      "speedup_vs_loop": statistics.median(timings[baseline]) / statistics.median(ts),
                      "answers_match_loop": match[name]} for name, ts in timings.items()}
    lines = ["", RULE, f"THROUGHPUT ({len(images)} images, mode {mode}, median of "
             f"{ctx.args.throughput_repeats} round(s))", RULE]
    for name, row in summary.items():
        lines.append(f"  {name:<14} {row['images_per_minute']:7.1f} images/min  "
                     f"{row['speedup_vs_loop']:5.2f}x the loop  answers "
                     f"{'match' if row['answers_match_loop'] else 'DIFFER'}")
    ctx.print("\n".join(lines))
    return {"images": [n for n, _ in images], "mode": mode, "summary": summary,
            "ok": all(match.values())}


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
CASES: dict[str, tuple[Callable[[Context], dict], Callable[[dict, Sequence[Any]], None] | None, int]] = {
    "comparison": (case_comparison, plot_comparison, 3),
    "scaling": (case_scaling, plot_scaling, 2),
    "throughput": (case_throughput, None, 0),
}


def write_plot(path: str | Path, results: dict, title: str) -> None:
    """One row of panels per case that has a plot (Agg; no pyplot state)."""
    from matplotlib.figure import Figure

    rows = [(name, CASES[name]) for name in results if name in CASES and CASES[name][1] and CASES[name][2]]
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


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def _comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in _comma_list(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers; got {text!r}") from err
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError("segment counts must be integers >= 2")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sedc benchmark",
        description="Time SEDC implementations against the original numpy code on the same photos, "
                    "segments and model, and check that they return the same counterfactuals.",
        epilog="Exit status: 0 when every exact implementation matched the original, 1 on a "
               "mismatch (float16 mismatches are reported but do not fail), 2 on a usage error.")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the model runs (default: auto = cuda when available)")
    p.add_argument("--model", default="efficientnet-lite0", help="built-in model name (default: %(default)s)")
    p.add_argument("--modes", type=_comma_list, default=None,
                   help="comma list of perturbation modes (default: blur; mean with --quick)")
    p.add_argument("--images", nargs="+", default=None, metavar="FILE",
                   help="image files (default: scikit-image's chelsea, coffee, rocket, astronaut)")
    p.add_argument("--repeats", type=_positive_int, default=None,
                   help="timed rounds after the warm-up round (default: 3; 1 with --quick)")
    p.add_argument("--implementations", type=_comma_list, default=None,
                   help="comma list to restrict to (default: original,pytorch,batch,explain and, on "
                        "CUDA, explain-fp16,explain-cl)")
    p.add_argument("--quick", action="store_true",
                   help=f"CI smoke test: one photo ({QUICK_PHOTO}), one round, mode mean, no warm-up "
                        "round (one warm-up model call); a smoke test taking seconds")
    p.add_argument("--cases", type=_comma_list, default=None,
                   help=f"comma list of cases to run, from {', '.join(CASES)} (default: comparison)")
    p.add_argument("--scaling", action="store_true", help="also run the scaling case (time vs segments)")
    p.add_argument("--throughput", action="store_true",
                   help=f"also run the throughput case: {THROUGHPUT_IMAGES} images, images per minute for an "
                        "explain loop, explain_many and two worker processes")
    p.add_argument("--throughput-repeats", type=_positive_int, default=1,
                   help="interleaved rounds of the throughput case (default: 1)")
    p.add_argument("--throughput-max-time", type=float, default=60.0,
                   help="max_time per image in the throughput case (default: 60)")
    p.add_argument("--scaling-segments", type=_int_list, default=list(SCALING_SEGMENTS),
                   help="SLIC n_segments for --scaling (default: 25,50,100,200)")
    p.add_argument("--scaling-max-evals", type=_positive_int, default=400,
                   help="max_evals cap of original per scaling run (default: %(default)s)")
    p.add_argument("--scaling-explain-max-evals", type=_positive_int, default=None,
                   help="max_evals cap of explain per scaling run (default: 10x --scaling-max-evals)")
    p.add_argument("--json", metavar="FILE", help="write raw timings, answers, machine and summary")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write a figure: a row of 3 panels for the comparison (time with error bars, "
                        "evaluations per second, model-bound fraction) and a row of 2 for --scaling")
    return p


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but CUDA is not available (torch "
                         f"{torch.__version__}, CUDA build {torch.version.cuda})")
    return torch.device(name)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, (torch.device, Path)):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """Replace NaN/inf by None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (see ``--help``)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    out = sys.stdout

    cases = list(args.cases) if args.cases else ["comparison"]
    if args.scaling and "scaling" not in cases:
        cases.append("scaling")
    if args.throughput and "throughput" not in cases:
        cases.append("throughput")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    try:
        device = _resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    modes = args.modes or (["mean"] if args.quick else ["blur"])
    from .perturbation import MODES

    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes:
        parser.error(f"unknown mode(s) {', '.join(bad_modes)}; choose from {', '.join(MODES)}")
    names = args.implementations or default_implementations(device)
    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; choose from {', '.join(IMPLEMENTATIONS)}")
    cuda_only = [n for n in names if IMPLEMENTATIONS[n].cuda_only and device.type != "cuda"]
    if cuda_only:
        parser.error(f"{', '.join(cuda_only)} only run on CUDA (device is {device})")
    repeats = args.repeats or (1 if args.quick else 3)

    from . import models as sedc_models

    loaded = sedc_models.load(args.model, device)
    module = loaded.module.eval()
    timed = {"default": TimedModel(module)}
    if any(IMPLEMENTATIONS[n].model_key == "channels_last" for n in names):
        timed["channels_last"] = TimedModel(copy.deepcopy(module).to(memory_format=torch.channels_last))

    if args.quick:
        photos_src = load_photos(args.images[:1] if args.images else None, loaded.input_size, (QUICK_PHOTO,))
    else:
        photos_src = load_photos(args.images, loaded.input_size)
    if "scaling" in cases and not args.images and not args.quick and SCALING_PHOTO not in [n for n, _ in photos_src]:
        photos_src += load_photos(None, loaded.input_size, (SCALING_PHOTO,))
    photos = [Photo(name, array, quickshift_segments(array)) for name, array in photos_src]

    ctx = Context(args=args, device=device, model_name=args.model, labels=list(loaded.labels),
                  input_size=loaded.input_size, models=timed, photos=photos, modes=modes,
                  implementations=names, repeats=repeats, warmup_rounds=0 if args.quick else 1, out=out)
    info = machine_info(device)
    ctx.print(RULE)
    ctx.print(f"sedc benchmark: model {args.model}, modes {', '.join(modes)}, photos "
              f"{', '.join(f'{p.name} ({p.n_segments} segments)' for p in photos)}"
              + (" [quick]" if args.quick else ""))
    ctx.print(format_machine(info))
    ctx.print(RULE)

    warm_up_model(ctx)
    started = time.perf_counter()
    for case in cases:
        ctx.results[case] = CASES[case][0](ctx)
    elapsed = time.perf_counter() - started
    ok = all(section.get("ok", True) for section in ctx.results.values())

    ctx.print("")
    ctx.print(format_machine(info))
    ctx.print(f"Benchmark took {elapsed:.1f} s. Result: "
              + ("OK" if ok else "FAILED: an exact implementation returned a different counterfactual"))

    if args.json:
        document = {
            "schema": SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "machine": info,
            "config": {"device": str(device), "model": args.model, "modes": modes, "repeats": repeats,
                       "warmup_rounds": ctx.warmup_rounds, "quick": args.quick, "cases": cases,
                       "implementations": names, "segmentation": {"method": "quickshift", **QUICKSHIFT},
                       "photos": [{"name": p.name, "n_segments": p.n_segments} for p in photos]},
            "elapsed_seconds": elapsed,
            "ok": ok,
            **ctx.results,
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_clean(document), indent=2, default=_json_default) + "\n", encoding="utf-8")
        ctx.print(f"Wrote {path}")
    if args.plot:
        write_plot(args.plot, ctx.results, f"sedc benchmark: {args.model} on {info['device_name']}")
        ctx.print(f"Wrote {args.plot}")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
