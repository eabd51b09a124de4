"""The ``sedc`` command line: ``sedc explain``, ``sedc demo``, ``sedc models``, ``sedc benchmark``.

Entry point :func:`main` (console script ``sedc`` and ``python -m sedc``). Results are written
one image at a time (``results.jsonl`` plus a figure per image) so that an interrupted run loses
nothing and a re-run of the same command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .perturbation import MODES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SEGMENTATIONS = ("quickshift", "slic", "felzenszwalb", "grid")
SEGMENTS_METHODS = ("slic", "grid")  # the methods that take --segments (n_segments)
NORMALIZE_CHOICES = ("imagenet", "half", "none")
RESULTS_FILE, ERRORS_FILE = "results.jsonl", "errors.jsonl"
DEMO_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
DEMO_SIZE = 224
# Settings that must match for a resumed run to add rows to an existing results.jsonl.
RUN_KEYS = ("model", "mode", "segmentation", "target")


class UsageError(Exception):
    """A problem with the command line itself: reported with exit status 2."""


# --------------------------------------------------------------------------------------------
# Help texts
# --------------------------------------------------------------------------------------------

MAIN_EPILOG = """\
examples:
  sedc demo                           explain four sample photos, figures in sedc-demo/
  sedc explain cat.jpg photos/        explain a photo and every image under photos/
  sedc explain photos/ --target tabby ask what must change for the model to say 'tabby'
  sedc models                         list the built-in models
  sedc explain --help                 all options, outputs and how resuming works
"""

EXPLAIN_DESCRIPTION = """\
Explain why an image classifier predicts what it does, with SEDC counterfactuals.

Each image is cut into regions (segments). SEDC searches for the smallest set of regions
whose removal changes the model's predicted class: "without these regions it is no longer
an Egyptian cat but a tabby". With --target it runs SEDC-T instead: the smallest set whose
removal makes the model predict the target class.
"""

EXPLAIN_EPILOG = f"""\
modes (what a removed region is replaced with, --mode):
  mean           the image's mean colour
  blur           a strongly blurred copy of the image (default)
  random         uniform noise (reproducible with --seed)
  inpaint        OpenCV Navier-Stokes inpainting from the surrounding pixels
  inpaint_telea  OpenCV Telea inpainting
  harmonic       smooth inpainting of all regions at once, computed in PyTorch

segmentation (how the image is cut into regions, --segmentation):
  quickshift     the SEDC paper's setting (kernel_size=4, max_dist=200, ratio=0.2); default
  slic           compact superpixels; --segments N sets roughly how many (default 50)
  felzenszwalb   graph-based regions of similar colour
  grid           a regular grid of about --segments N cells (default 49, i.e. 7x7)

--target accepts a class id (281) or a class name, case-insensitive, underscores as spaces
('tabby', 'Egyptian_cat'); for ImageNet models every synonym works ('tabby cat'). An unknown
name exits with status 2 and suggests close names.

models: the built-in model by name (see 'sedc models'), a TorchScript file (model.pt) or
'package.module:factory' (module importable, e.g. on PYTHONPATH; factory() returns a
torch.nn.Module). A user model takes RGB batches (B, 3, S, S) normalised with --normalize and
returns class scores (B, K); a softmax is added. WARNING: a TorchScript file and a
module:factory spec run code on your machine: only load models you trust.

outputs (in --out DIR, default sedc-out/), written as soon as each image is done:
  DIR/results.jsonl    one JSON object per image: image (its path as given or found),
                       found, original_class/_label/_score, new_class/_label/_score,
                       segments (removed region ids), n_segments_total, n_evaluations,
                       elapsed_s, mode, stop_reason, target, target_label, figure, model,
                       segmentation
  DIR/<name>.png       figure: original | removed regions | counterfactual (not with
                       --no-figures)
  DIR/errors.jsonl     the images that failed in the latest run, with the reason (also
                       printed to stderr); failed images are never written to results.jsonl

resuming: run the same command again and images already in {RESULTS_FILE} are skipped
(failed ones are retried), so an interrupted run continues where it stopped. The results of a
resumed run must use the same model, mode, segmentation and target; --overwrite discards
the previous results and explains every image again.

exit status: 0 every image was explained (with or without a counterfactual); 1 some image
could not be read or failed (named on stderr; the others are still written); 2 usage error
(bad option, unknown --target, model that cannot be loaded, no images found).

examples:
  sedc explain chelsea.png
  sedc explain photos/ --mode mean --max-time 30 --out results/
  sedc explain photos/ --target "tiger cat" --prune
  sedc explain scans/ --model mynet.pt --input-size 128 --normalize half --labels classes.txt \\
      --segmentation grid --segments 16
  sedc explain photos/ --model mypackage.models:build_net --device cuda
  sedc explain val/ --devices all          one worker process per GPU
  sedc explain val/ --ray auto             spread over a running Ray cluster
"""

MODELS_EPILOG = """\
Besides these you can pass your own model to 'sedc explain --model': a TorchScript file or a
'package.module:factory' spec (see 'sedc explain --help').

example:
  sedc models
"""

DEMO_EPILOG = f"""\
The demo saves scikit-image's sample photos ({', '.join(DEMO_PHOTOS)}), resized to
{DEMO_SIZE}x{DEMO_SIZE}, as PNGs in DIR/inputs/ and runs 'sedc explain DIR/inputs --overwrite'
on them with the built-in model: the figures land in DIR/ and the results in DIR/{RESULTS_FILE}.

examples:
  sedc demo
  sedc demo --mode mean --max-time 20 --out /tmp/demo
"""

BENCHMARK_HELP = "time SEDC implementations and check that they agree ('sedc benchmark --help')"


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``sedc`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="sedc", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=MAIN_EPILOG,
        description="Fast SEDC / SEDC-T counterfactual explanations for PyTorch image classifiers.")
    parser.add_argument("--version", action="version", version=f"sedc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_explain_parser(commands)
    _add_demo_parser(commands)
    commands.add_parser("models", help="list the built-in models", epilog=MODELS_EPILOG,
                        description="List the built-in models with a description of each.",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands.add_parser("benchmark", help=BENCHMARK_HELP, add_help=False)
    return parser


def _add_explain_parser(commands: Any) -> None:
    """``sedc explain`` and its options."""
    p = commands.add_parser("explain", help="explain image files and folders",
                            description=EXPLAIN_DESCRIPTION, epilog=EXPLAIN_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files, and folders searched recursively for "
                        ".jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff files")
    model = p.add_argument_group("model")
    model.add_argument("--model", default=None, metavar="NAME|FILE|MODULE:FACTORY",
                       help="built-in model name (default: efficientnet-lite0), TorchScript file, or "
                            "'package.module:factory'. TorchScript files and module:factory specs "
                            "run code: only load what you trust")
    model.add_argument("--input-size", type=_positive_int, default=None, metavar="S",
                       help="user models: side of the square input images (default 224)")
    model.add_argument("--normalize", choices=NORMALIZE_CHOICES, default=None,
                       help="user models: input normalisation, imagenet (default), half "
                            "(mean=std=0.5) or none ([0, 1] pixels)")
    model.add_argument("--labels", default=None, metavar="FILE",
                       help="user models: text file with one class name per line, in output order "
                            "(default: classes are named by their ids)")
    _add_device_option(model)
    search = p.add_argument_group("search")
    _add_search_options(search)
    search.add_argument("--segmentation", choices=SEGMENTATIONS, default="quickshift",
                        help="how images are cut into regions (default: quickshift)")
    search.add_argument("--segments", type=_positive_int, default=None, metavar="N",
                        help="number of regions for slic (approximate) and grid")
    search.add_argument("--target", default=None, metavar="NAME|ID",
                        help="run SEDC-T: find regions whose removal makes the model predict this "
                             "class (id or name)")
    search.add_argument("--batch-size", type=_batch_size, default="auto", metavar="auto|N",
                        help="candidate images per model call (default: auto, measured)")
    search.add_argument("--max-evals", type=_positive_int, default=None, metavar="N",
                        help="stop each search after N model evaluations (default: no limit)")
    search.add_argument("--prune", action="store_true",
                        help="after finding a counterfactual, drop regions that are not needed")
    search.add_argument("--seed", type=int, default=0, help="seed of the random mode (default: 0)")
    scale = p.add_argument_group("scale (several images are always explained together, sharing model batches)")
    scale.add_argument("--devices", default=None, metavar="all|cuda:0,cuda:1|cpu,cpu",
                       help="one worker process per listed device, each with its own copy of the model; "
                            "'all' uses every GPU. Results are identical to a single-process run")
    scale.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray (pip install 'sedc[ray]'): no ADDRESS starts a fresh local "
                            "Ray; 'auto' or ray://HOST:10001 joins a running cluster. One actor per GPU "
                            "(or per CPU worker); results stream into the same results.jsonl")
    out = p.add_argument_group("output")
    _add_out_option(out, "sedc-out")
    out.add_argument("--overwrite", action="store_true",
                     help=f"discard DIR/{RESULTS_FILE} and explain every image again "
                          "(default: resume, skipping images already there)")
    out.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures")
    out.add_argument("--quiet", action="store_true",
                     help="print only errors (no progress bar, per-image lines or summary)")


def _add_demo_parser(commands: Any) -> None:
    """``sedc demo`` and its options."""
    p = commands.add_parser("demo", help="explain sample photos with the built-in model",
                            description="Explain four sample photos with the built-in model.",
                            epilog=DEMO_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_search_options(p)
    _add_device_option(p)
    _add_out_option(p, "sedc-demo")


def _add_search_options(p: Any) -> None:
    """Options shared by explain and demo: mode and time limit."""
    p.add_argument("--mode", choices=MODES, default="blur",
                   help="what removed regions are replaced with (default: blur; the modes are "
                        "described in 'sedc explain --help')")
    p.add_argument("--max-time", type=_max_time, default=60.0, metavar="S",
                   help="stop each image's search after S seconds; 0 for no limit (default: 60)")


def _add_device_option(p: Any) -> None:
    """The --device option (explain and demo)."""
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where to run the model (default: auto, CUDA when available)")


def _add_out_option(p: Any, default: str) -> None:
    """The --out option, with its command's default folder."""
    p.add_argument("--out", default=default, metavar="DIR", type=Path,
                   help=f"output folder, created if needed (default: {default})")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _batch_size(text: str) -> int | str:
    """argparse type: ``auto`` or an integer >= 1."""
    return "auto" if text.strip().lower() == "auto" else _positive_int(text)


def _max_time(text: str) -> float | None:
    """argparse type: seconds >= 0, where 0 means no limit (None)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0); got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0); got {text!r}")
    return None if value == 0 else value


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sedc`` command line; returns the exit status (0 ok, 1 failures, 2 usage)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["benchmark"]:
        return run_benchmark(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as stop:  # --help and --version (0), argparse errors (2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "explain": run_explain, "demo": run_demo, "models": run_models}
    try:
        return commands[args.command](args)
    except UsageError as err:
        print(f"sedc {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; results written so far are kept: run the same command again to "
              "resume", file=sys.stderr)
        return 130


def run_models(args: argparse.Namespace) -> int:
    """``sedc models``: print each built-in model and its description."""
    from . import models

    for name, description in models.describe().items():
        default = " (default)" if name == models.DEFAULT_MODEL else ""
        print(f"{name}{default}")
        print(textwrap.fill(description, width=88, initial_indent="    ", subsequent_indent="    "))
    return EXIT_OK


def run_benchmark(argv: list[str]) -> int:
    """``sedc benchmark ...``: hand the arguments to :func:`sedc.benchmark.main`."""
    try:
        from .benchmark import main as benchmark_main
    except ImportError as err:
        reason = ("the benchmark module (sedc.benchmark) is not available in this installation"
                  if getattr(err, "name", None) == "sedc.benchmark" else f"cannot import it: {err}")
        print(f"sedc benchmark: error: {reason}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return int(benchmark_main(argv) or 0)
    except SystemExit as stop:  # its own argparse: --help (0), usage errors (2)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE


# --------------------------------------------------------------------------------------------
# sedc demo
# --------------------------------------------------------------------------------------------

def run_demo(args: argparse.Namespace) -> int:
    """``sedc demo``: save the sample photos to DIR/inputs/ and run ``explain`` on them."""
    inputs = write_demo_photos(args.out / "inputs")
    argv = ["explain", str(inputs), "--out", str(args.out), "--mode", args.mode,
            "--max-time", str(args.max_time or 0), "--device", args.device, "--overwrite"]
    code = run_explain(build_parser().parse_args(argv))
    print(f"Demo figures: {args.out}{os.sep}*.png (inputs in {inputs})")
    return code


def write_demo_photos(folder: Path) -> Path:
    """Save scikit-image's sample photos, resized to the model's input size, as PNGs."""
    import numpy as np
    from PIL import Image
    from skimage import data, transform

    folder.mkdir(parents=True, exist_ok=True)
    for name in DEMO_PHOTOS:
        photo = transform.resize(getattr(data, name)(), (DEMO_SIZE, DEMO_SIZE), anti_aliasing=True)
        pixels = np.clip(np.round(photo * 255), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}.png")
    return folder


# --------------------------------------------------------------------------------------------
# sedc explain
# --------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One ``sedc explain`` run: where it writes, what it records, and what happened."""

    store: "ResultStore"
    labels: list[str]
    settings: dict[str, Any]
    quiet: bool
    total: int = 0
    skipped: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


def run_explain(args: argparse.Namespace) -> int:
    """``sedc explain``: explain every image, writing results as each one finishes."""
    from .io import image_id

    check_options(args)
    images = find_inputs(args.paths)
    loaded = load_model(args)
    target = resolve_target(args.target, loaded.labels)
    settings = {"model": loaded.name, "mode": args.mode,
                "segmentation": segmentation_name(args.segmentation, args.segments),
                "target": target}
    store = ResultStore(args.out, overwrite=args.overwrite)
    store.check_settings(settings)
    run = Run(store, loaded.labels, settings, args.quiet, total=len(images))
    todo = [path for path in images if image_id(path) not in store.done]
    run.skipped = len(images) - len(todo)
    explain_all(todo, loaded, args, run)
    if not args.quiet:
        print_summary(run)
    return EXIT_FAILED if run.failed else EXIT_OK


def check_options(args: argparse.Namespace) -> None:
    """Usage checks that need no model: --segments and the user-model-only options."""
    if args.segments is not None and args.segmentation not in SEGMENTS_METHODS:
        raise UsageError(f"--segments applies to --segmentation {' or '.join(SEGMENTS_METHODS)}, "
                         f"not {args.segmentation} (which chooses the number of regions itself)")
    if is_builtin(args.model):
        given = [flag for flag, value in (("--input-size", args.input_size),
                                          ("--normalize", args.normalize), ("--labels", args.labels))
                 if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to your own models (a TorchScript file "
                             f"or module:factory); the built-in {args.model or 'model'} sets them")


def is_builtin(spec: str | None) -> bool:
    """Whether ``--model`` names a built-in model (None: the default one)."""
    from . import models

    return spec is None or spec.strip().lower() in models.available()


def find_inputs(paths: Sequence[str]) -> list[Path]:
    """The image files named by ``paths`` (files and folders); usage error when there are none."""
    from .io import find_images

    try:
        images = find_images(list(paths))
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not images:
        raise UsageError(f"no images found in {', '.join(map(str, paths))} (looked for files ending "
                         "in .jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff)")
    return images


def load_model(args: argparse.Namespace) -> Any:
    """Load the built-in or user model named by ``--model`` on ``--device``."""
    from . import models

    try:
        if is_builtin(args.model):
            return models.load(args.model or models.DEFAULT_MODEL, device=args.device)
        return models.load_user_model(args.model, input_size=args.input_size or 224,
                                      normalize=args.normalize or "imagenet", labels=args.labels,
                                      device=args.device)
    except (ValueError, TypeError) as err:
        raise UsageError(f"{err}{builtin_hint(args.model)}") from None
    except Exception as err:  # user factories can raise anything
        raise UsageError(f"cannot load model {args.model!r}: {type(err).__name__}: {err}") from None


def builtin_hint(spec: str | None) -> str:
    """Name the built-in models when ``spec`` is neither a built-in, a file nor a factory spec."""
    from . import models

    if spec is None or ":" in spec or Path(spec).exists():
        return ""
    return f" (built-in models: {', '.join(models.available())})"


def resolve_target(query: str | None, labels: list[str]) -> int | None:
    """The class id of ``--target`` (None without one); usage error for an unknown class."""
    if query is None:
        return None
    from .models import resolve_class

    try:
        return resolve_class(query, labels)
    except ValueError as err:
        raise UsageError(f"--target: {err}") from None


def segmentation_name(method: str, n_segments: int | None) -> str:
    """How the segmentation is recorded in the results: ``"slic(n_segments=50)"``."""
    return method if n_segments is None else f"{method}(n_segments={n_segments})"


def make_segmenter(method: str, n_segments: int | None) -> Callable[[Any], Any]:
    """A function image -> label map for ``--segmentation`` and ``--segments``."""
    from .segmentation import segment

    params = {} if n_segments is None else {"n_segments": n_segments}
    return functools.partial(_segment_image, segment, method, params)


def _segment_image(segment: Callable[..., Any], method: str, params: dict[str, Any], image: Any) -> Any:
    """Segment one image (a module-level function, so the segmenter pickles for worker processes)."""
    return segment(image, method, **params)


def model_factory(args: argparse.Namespace) -> Callable[[], Any]:
    """A picklable zero-argument factory of the model, for worker processes and Ray actors."""
    return functools.partial(_build_module, args.model, args.input_size, args.normalize, args.labels)


def _build_module(spec: str | None, input_size: int | None, normalize: str | None,
                  labels: str | None) -> Any:
    """Build the classifier module of ``--model`` on the CPU (the worker moves it)."""
    from . import models

    if is_builtin(spec):
        return models.load(spec or models.DEFAULT_MODEL, device="cpu").module
    return models.load_user_model(spec, input_size=input_size or 224, normalize=normalize or "imagenet",
                                  labels=labels, device="cpu").module


def stream_results(loaders: list[Any], loaded: Any, args: argparse.Namespace, target: int | None) -> Any:
    """``(index, result)`` pairs from one process, worker processes (--devices) or Ray (--ray)."""
    from .many import iter_explain

    segmenter = make_segmenter(args.segmentation, args.segments)
    options = explain_options(args, target)
    if args.ray is not None:
        from .ray import iter_explain_ray

        return iter_explain_ray(loaders, model_factory(args), address=args.ray, segmenter=segmenter,
                                on_error="return", **options)
    if args.devices is not None:
        from .workers import parse_devices

        return iter_explain(loaders, model_factory(args), devices=parse_devices(args.devices),
                            segmenter=segmenter, on_error="return", **options)
    return iter_explain(loaders, loaded.module, segmenter=segmenter, on_error="return", **options)


def explain_options(args: argparse.Namespace, target: int | None) -> dict[str, Any]:
    """The keyword options of :func:`sedc.explain` given on the command line."""
    return {"mode": args.mode, "target": target, "batch_size": args.batch_size,
            "max_time": args.max_time, "max_evals": args.max_evals, "prune": args.prune,
            "seed": args.seed}


def explain_all(images: list[Path], loaded: Any, args: argparse.Namespace, run: Run) -> None:
    """Explain ``images`` and record each as it finishes (figure first, then its JSON row)."""
    from tqdm import tqdm

    from .io import image_id, load_image, safe_stem

    ids = [image_id(path) for path in images]
    loaders = [functools.partial(load_image, path, loaded.input_size) for path in images]
    results = stream_results(loaders, loaded, args, run.settings["target"])
    pending = set(range(len(images)))
    with tqdm(total=len(images), unit="image", file=sys.stderr,
              disable=True if args.quiet else None) as bar:
        try:
            for index, result in results:
                pending.discard(index)
                stem = None if args.no_figures else safe_stem(ids[index], run.store.stems)
                record(run, ids[index], result, stem, bar.write)
                bar.update()
        except Exception as err:  # a failure of the whole run: name the images left undone
            for index in sorted(pending):
                report_error(run, ids[index], f"not processed: {describe_error(err)}")


def record(run: Run, image: str, result: Any, stem: str | None, write: Callable[[str], None]) -> None:
    """Write one image's figure and result row, or report its failure."""
    if isinstance(result, BaseException):
        report_error(run, image, describe_error(result))
        return
    figure = None
    if stem is not None:
        figure = f"{stem}.png"
        try:
            result.plot(run.labels, path=run.store.folder / figure)
        except Exception as err:  # a row without its figure would not be retried: fail the image
            report_error(run, image, f"cannot write figure {figure}: {describe_error(err)}")
            return
    row = result_row(image, result, run.labels, run.settings, figure)
    run.store.append(row)
    run.rows.append(row)
    if not run.quiet:
        write(status_line(row))


def describe_error(err: BaseException) -> str:
    """A one-line reason for a failed image."""
    from .io import ImageLoadError
    from .many import ImageError

    if isinstance(err, ImageError):
        if err.error is None:
            return err.message
        err = err.error
    if isinstance(err, ImageLoadError):
        return err.reason
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def report_error(run: Run, image: str, reason: str) -> None:
    """Name a failed image on stderr and in errors.jsonl."""
    from tqdm import tqdm

    tqdm.write(f"error: {image}: {reason}", file=sys.stderr)
    run.store.append_error({"image": image, "error": reason})
    run.failed.append(image)


def result_row(image: str, e: Any, labels: list[str], settings: dict[str, Any],
               figure: str | None) -> dict[str, Any]:
    """The results.jsonl object of one explanation."""
    from .visualize import class_name

    d = e.to_dict()
    target = d["target"]
    return {
        "image": image, "found": d["found"],
        "original_class": d["original_class"], "original_label": class_name(d["original_class"], labels),
        "original_score": d["original_score"],
        "new_class": d["new_class"], "new_label": class_name(d["new_class"], labels),
        "new_score": d["new_score"], "original_class_score": d["original_class_score"],
        "segments": d["segments"], "n_segments_total": d["n_segments_total"],
        "n_evaluations": d["n_evaluations"], "elapsed_s": round(d["elapsed_s"], 4),
        "mode": d["mode"], "stop_reason": d["stop_reason"], "target": target,
        "target_label": None if target is None else class_name(target, labels), "figure": figure,
        "model": settings["model"], "segmentation": settings["segmentation"],
    }


def status_line(row: dict[str, Any]) -> str:
    """``chelsea.png: Egyptian cat 0.79 -> tabby 0.41, 3 regions, 57 evals, 4.1 s``."""
    before = f"{row['original_label']} {row['original_score']:.2f}"
    n = len(row["segments"])
    if row["found"]:
        change = f"{before} -> {row['new_label']} {row['new_score']:.2f}, {plural(n, 'region')}"
    else:
        change = f"{before}, no counterfactual ({row['stop_reason']})"
    return f"{row['image']}: {change}, {row['n_evaluations']} evals, {row['elapsed_s']:.1f} s"


def print_summary(run: Run) -> None:
    """Counts, medians, total time and where the outputs are."""
    rows = run.rows
    found = [row for row in rows if row["found"]]
    parts = [f"explained {len(rows)} of {plural(run.total, 'image')}"]
    if rows:
        parts.append(f"found {len(found)}/{len(rows)}")
    if run.skipped:
        parts.append(f"skipped {run.skipped} already in {RESULTS_FILE} (--overwrite redoes them)")
    if run.failed:
        parts.append(f"{len(run.failed)} failed (listed in {run.store.errors})")
    print("Done: " + ", ".join(parts) + ".")
    stats = []
    if found:
        median = statistics.median(len(r["segments"]) for r in found)
        stats.append(f"median {median:g} region{'s' * (median != 1)} (where found)")
    if rows:
        median = statistics.median(r["n_evaluations"] for r in rows)
        stats.append(f"median {median:g} evaluation{'s' * (median != 1)}")
    stats.append(f"total time {time.perf_counter() - run.started:.1f} s")
    line = ", ".join(stats)
    print(line[0].upper() + line[1:] + ".")
    figures = f"; figures: {run.store.folder}{os.sep}*.png" if any(r["figure"] for r in rows) else ""
    print(f"Results: {run.store.results}{figures}")


def plural(n: int, word: str) -> str:
    """``"1 region"``, ``"3 regions"``."""
    return f"{n} {word}{'s' * (n != 1)}"


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
        self.done: dict[str, dict[str, Any]] = {row["image"]: row for row in read_rows(self.results)}
        self.stems: set[str] = {Path(row["figure"]).stem for row in self.done.values()
                                if isinstance(row.get("figure"), str)}

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse to mix rows made with other settings into results.jsonl."""
        for row in self.done.values():
            differ = [f"{key} {row.get(key)!r} (now {settings[key]!r})" for key in RUN_KEYS
                      if row.get(key) != settings[key]]
            if differ:
                raise UsageError(f"{self.results} holds results made with other settings: "
                                 f"{', '.join(differ)}; use --overwrite to replace them or --out "
                                 "to write elsewhere")

    def append(self, row: dict[str, Any]) -> None:
        """Add a row to results.jsonl, durably."""
        append_line(self.results, row)
        self.done[row["image"]] = row

    def append_error(self, row: dict[str, Any]) -> None:
        """Add a failure to errors.jsonl."""
        append_line(self.errors, row)


def append_line(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (fsync), so a crash loses no finished image."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The valid rows of a JSONL results file; repairs a partial last line left by a crash.

    Lines that are not JSON objects with an ``image`` key are ignored. An unterminated last line
    is dropped from the file when it is not valid JSON (a write cut short), or terminated when it
    is, so that appended rows start on a line of their own.
    """
    if not path.is_file():
        return []
    data = repair_tail(path, path.read_bytes())
    rows = [parse_row(line) for line in data.decode("utf-8", errors="replace").splitlines()]
    return [row for row in rows if row is not None]


def repair_tail(path: Path, data: bytes) -> bytes:
    """Terminate or drop the unterminated last line of ``path``; returns the new contents."""
    if not data or data.endswith(b"\n"):
        return data
    cut = data.rfind(b"\n") + 1
    if parse_row(data[cut:].decode("utf-8", errors="replace")) is not None:
        with open(path, "ab") as handle:
            handle.write(b"\n")
        return data + b"\n"
    print(f"warning: dropping an incomplete last line of {path} (an interrupted write)",
          file=sys.stderr)
    with open(path, "r+b") as handle:
        handle.truncate(cut)
    return data[:cut]


def parse_row(line: str) -> dict[str, Any] | None:
    """A results row parsed from ``line``, or None when it is not one."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("image"), str) else None
