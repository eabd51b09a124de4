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
    Images per minute on many images: the explain loop against ``explain_many`` and two worker
    processes (``--throughput-variants``), answers compared, after ``--throughput-warmup``
    rounds left out of the medians.

``inpaint`` (``--cases inpaint``)
    The harmonic fill against OpenCV's inpainting, per photo.

The JSON (``--json``) is written after each case, so a run cut short keeps the finished cases
(``"complete": false`` until the last one).

``overhead`` (``--overhead``)
    ``sedc.explain``'s cost per model evaluation against the model alone at its best batch size,
    for torch and ONNX Runtime, interleaved, and the batch size ``"auto"`` picks in ``explain``
    and ``explain_many`` (:mod:`sedc.benchmark.overhead`).

``search`` (``--search``)
    The search strategies (exact, fast, beam(2), beam(4)) on scikit-image photos at quickshift and
    SLIC ~100 segments: found, k against exact's, evaluations, model calls, estimated time
    (:mod:`sedc.benchmark.search`). Alone unless ``--cases`` names others.

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
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..base.validate import resolve_device
from ..benchmark.cases import (
    CASES,
    THROUGHPUT_VARIANTS,
    load_photos,
    quickshift_segments,
)
from ..benchmark.measure import (
    IMPLEMENTATIONS,
    QUICK_PHOTO,
    RULE,
    SCALING_PHOTO,
    SCALING_SEGMENTS,
    SCHEMA,
    THROUGHPUT_IMAGES,
    Context,
    Photo,
    TimedModel,
    default_implementations,
    warm_up_model,
)
from ..benchmark.report import format_machine, machine_info, write_plot
from ..imaging.segmentation import DEFAULT_PARAMS
from .common import positive_int

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
    p.add_argument("--repeats", type=positive_int, default=None,
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
                   help="also run the throughput case: --throughput-images images, images per minute for an "
                        "explain loop, explain_many and two worker processes")
    p.add_argument("--overhead", action="store_true",
                   help="also run the overhead case: explain's cost per model evaluation against the model "
                        "alone at its best batch size, per runtime, and the batch size auto picks")
    p.add_argument("--throughput-images", type=positive_int, default=THROUGHPUT_IMAGES, metavar="N",
                   help=f"images in the throughput case (default: {THROUGHPUT_IMAGES})")
    p.add_argument("--throughput-repeats", type=positive_int, default=1,
                   help="interleaved rounds of the throughput case (default: 1)")
    p.add_argument("--throughput-max-time", type=float, default=60.0,
                   help="max_time per image in the throughput case (default: 60)")
    p.add_argument("--throughput-warmup", type=int, default=0, metavar="N",
                   help="warm-up rounds of the throughput case before the timed ones, left out of the "
                        "medians; worker processes start afresh each round and get none (default: 0)")
    p.add_argument("--throughput-variants", type=_comma_list, default=list(THROUGHPUT_VARIANTS),
                   help="comma list of the throughput variants to run, from "
                        f"{','.join(THROUGHPUT_VARIANTS)}; loop is the baseline (default: all)")
    p.add_argument("--scaling-segments", type=_int_list, default=list(SCALING_SEGMENTS),
                   help="SLIC n_segments for --scaling (default: 25,50,100,200)")
    p.add_argument("--scaling-max-evals", type=positive_int, default=400,
                   help="max_evals cap of original per scaling run (default: %(default)s)")
    p.add_argument("--scaling-explain-max-evals", type=positive_int, default=None,
                   help="max_evals cap of explain per scaling run (default: 10x --scaling-max-evals)")
    _add_search_arguments(p)
    p.add_argument("--json", metavar="FILE", help="write raw timings, answers, machine and summary")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write a figure: a row of 3 panels for the comparison (time with error bars, "
                        "evaluations per second, model-bound fraction) and a row of 2 for --scaling")
    return p


def _add_search_arguments(p: argparse.ArgumentParser) -> None:
    """``--search`` and its settings."""
    from ..benchmark.search import MAX_EVALS, PHOTOS, TARGETS, TIME_LIMIT

    p.add_argument("--search", action="store_true",
                   help="run the search case alone (with --cases, add 'search' there instead): exact, fast, "
                        "beam(2) and beam(4) on scikit-image photos at quickshift and SLIC ~100 segments, "
                        "modes from --modes; --quick: one photo, quickshift, plain SEDC")
    p.add_argument("--search-photos", type=_comma_list, default=None, metavar="NAME,...",
                   help=f"scikit-image photos of the search case (default: {','.join(PHOTOS)})")
    p.add_argument("--search-targets", type=_comma_list, default=None, metavar="none,second",
                   help=f"none: SEDC; second: SEDC-T toward the photo's second class (default: {','.join(TARGETS)})")
    p.add_argument("--search-max-evals", type=positive_int, default=MAX_EVALS, metavar="N",
                   help="a safeguard cap on each search of the search case (default: %(default)s)")
    p.add_argument("--search-time-limit", type=float, default=TIME_LIMIT, metavar="S",
                   help="the time limit of the 'found within' column, in estimated seconds (default: "
                        "%(default)s, the SEDC paper's)")


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
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")  # protocol: json.dump's default hook


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

    cases = list(args.cases) if args.cases else (["search"] if args.search else ["comparison"])
    if args.scaling and "scaling" not in cases:
        cases.append("scaling")
    if args.throughput and "throughput" not in cases:
        cases.append("throughput")
    if args.overhead and "overhead" not in cases:
        cases.append("overhead")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    bad_targets = [t for t in args.search_targets or () if t not in ("none", "second")]
    if bad_targets:
        parser.error(f"unknown --search-targets {', '.join(bad_targets)}; choose from none, second")
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    modes = args.modes or (["mean"] if args.quick else ["blur"])
    from ..base.options import MODES

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
    cpu_only = [n for n in names if IMPLEMENTATIONS[n].runtime == "onnxruntime" and device.type != "cpu"]
    if cpu_only:
        parser.error(f"{', '.join(cpu_only)} run on ONNX Runtime on the CPU (device is {device})")
    repeats = args.repeats or (1 if args.quick else 3)
    bad_variants = [v for v in args.throughput_variants if v not in THROUGHPUT_VARIANTS]
    if bad_variants or "loop" not in args.throughput_variants:
        parser.error(f"--throughput-variants takes a comma list from {','.join(THROUGHPUT_VARIANTS)} "
                     "that includes loop (the baseline)")
    if args.throughput_warmup < 0:
        parser.error("--throughput-warmup must be 0 or more")

    from .. import models as sedc_models

    loaded = sedc_models.load(args.model, device)
    module = loaded.module.eval()
    timed = {"default": TimedModel(module)}
    if any(IMPLEMENTATIONS[n].model_key == "channels_last" for n in names):
        timed["channels_last"] = TimedModel(copy.deepcopy(module).to(memory_format=torch.channels_last))
    if any(IMPLEMENTATIONS[n].model_key == "onnxruntime" for n in names):
        size = loaded.input_size
        timed["onnxruntime"] = TimedModel(sedc_models.accelerate(module, (3, size, size)))

    if args.quick:
        photos_src = load_photos(args.images[:1] if args.images else None, loaded.input_size, (QUICK_PHOTO,))
    else:
        photos_src = load_photos(args.images, loaded.input_size)
    if "scaling" in cases and not args.images and not args.quick and SCALING_PHOTO not in [n for n, _ in photos_src]:
        photos_src += load_photos(None, loaded.input_size, (SCALING_PHOTO,))
    if cases == ["search"]:  # it loads and segments photos of its own
        photos_src = []
    photos = [Photo(name, array, quickshift_segments(array)) for name, array in photos_src]

    ctx = Context(args=args, device=device, model_name=args.model, labels=list(loaded.class_names),
                  input_size=loaded.input_size, models=timed, photos=photos, modes=modes,
                  implementations=names, repeats=repeats, warmup_rounds=0 if args.quick else 1, out=out)
    info = machine_info(device)
    ctx.print(RULE)
    ctx.print(f"sedc benchmark: model {args.model}, modes {', '.join(modes)}"
              + (f", photos {', '.join(f'{p.name} ({p.n_segments} segments)' for p in photos)}" if photos else "")
              + (" [quick]" if args.quick else ""))
    ctx.print(format_machine(info))
    ctx.print(RULE)

    warm_up_model(ctx)
    started = time.perf_counter()

    def write_json(complete: bool) -> None:
        document = {
            "schema": SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "machine": info,
            "config": {"device": str(device), "model": args.model, "modes": modes, "repeats": repeats,
                       "warmup_rounds": ctx.warmup_rounds, "quick": args.quick, "cases": cases,
                       "implementations": names, "segmentation": {"method": "quickshift", **DEFAULT_PARAMS["quickshift"]},
                       "photos": [{"name": p.name, "n_segments": p.n_segments} for p in photos]},
            "elapsed_seconds": time.perf_counter() - started,
            "complete": complete,
            "ok": all(section.get("ok", True) for section in ctx.results.values()),
            **ctx.results,
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_clean(document), indent=2, default=_json_default) + "\n", encoding="utf-8")

    for i, case in enumerate(cases):
        ctx.results[case] = CASES[case][0](ctx)
        if args.json and i < len(cases) - 1:
            write_json(complete=False)  # a run cut short keeps what it finished
    elapsed = time.perf_counter() - started
    ok = all(section.get("ok", True) for section in ctx.results.values())

    ctx.print("")
    ctx.print(format_machine(info))
    ctx.print(f"Benchmark took {elapsed:.1f} s. Result: "
              + ("OK" if ok else "FAILED: an exact implementation returned a different counterfactual"))

    if args.json:
        write_json(complete=True)
        ctx.print(f"Wrote {args.json}")
    if args.plot:
        write_plot(args.plot, ctx.results, f"sedc benchmark: {args.model} on {info['device_name']}", CASES)
        ctx.print(f"Wrote {args.plot}")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

