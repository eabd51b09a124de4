"""The ``sedc`` command line: the parser, the entry point, and ``sedc demo|models|benchmark``.

Entry point :func:`main` (console script ``sedc`` and ``python -m sedc``). ``sedc explain`` lives
in :mod:`sedc.cli.explain`, the result files in :mod:`sedc.cli.results`.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import __version__
from ..base.errors import UsageError
from ..base.options import DEFAULT_BEAM_WIDTH, MODES, NO_LIMIT, SEARCHES, ExplainOptions
from ..base.schema import RESULTS_FILE
from ..imaging.io import IMAGE_EXTENSIONS
from ..imaging.segmentation import METHODS as SEGMENTATIONS
from ..models.user import NORMALIZATIONS
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    RenamedFlag,
    batch_size,
    checks,
    beam_width,
    input_size,
    max_evals,
    max_time,
    modes,
    positive_int,
    search_strategy,
    seconds,
    seed,
)
from .dataset import add_dataset_options
from .explain import run_explain
from .report import add_report_parser, run_report
from .runtime import add_runtime_option
from .texts import DEMO_EPILOG, EXPLAIN_DESCRIPTION, EXPLAIN_EPILOG, MAIN_EPILOG, MODELS_EPILOG

DEFAULTS = ExplainOptions()  # the library's defaults are the command line's
CLI_MAX_TIME = 60.0  # except the time limit: a command line stops each search after a minute

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
    add_report_parser(commands)
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
                        f"{'/'.join(IMAGE_EXTENSIONS)} files")
    model = p.add_argument_group("model")
    model.add_argument("--model", default=None, metavar="SPEC",
                       help="built-in model name (default: efficientnet-lite0), torchvision:NAME, "
                            "timm:NAME, hf:ORG/NAME, hf:DIR, FILE.onnx/.pt2/.pt, or "
                            "'package.module:factory'. TorchScript files and module:factory specs "
                            "run code: only load what you trust. See 'Your own model' in the README")
    model.add_argument("--input-size", type=input_size, default=None, metavar="S|HxW",
                       help="model files and factories: input image size, S (square) or HxW "
                            "(default 224, or the size fixed in a .pt2/.onnx file)")
    model.add_argument("--normalize", choices=tuple(NORMALIZATIONS), default=None,
                       help="model files and factories: input normalisation, imagenet (default), half "
                            "(mean=std=0.5) or none ([0, 1] pixels)")
    model.add_argument("--class-names", "--labels", dest="class_names", default=None,
                       metavar="imagenet|FILE", action=RenamedFlag,
                       help="your models: 'imagenet' (the ImageNet-1k names) or a text file with one "
                            "class name per line, in output order (default: the model's own class "
                            "names, else the class ids). --labels is its old name")
    _add_device_option(model)
    add_runtime_option(model)
    search = p.add_argument_group("search")
    _add_search_options(search)
    search.add_argument("--segmentation", choices=SEGMENTATIONS, default="quickshift",
                        help="how images are cut into regions (default: quickshift)")
    search.add_argument("--segments", type=positive_int, default=None, metavar="N",
                        help="number of regions for slic (approximate) and grid")
    search.add_argument("--target", default=None, metavar="NAME|ID|true",
                        help="run SEDC-T: find regions whose removal makes the model predict this "
                             "class (id or name); 'true': each misclassified image toward its true "
                             "class, correct ones with plain SEDC (needs --ground-truth)")
    search.add_argument("--batch-size", type=batch_size, default=DEFAULTS.batch_size, metavar="auto|N",
                        help="candidate images per model call (default: auto, measured)")
    search.add_argument("--max-evals", type=max_evals, default=DEFAULTS.max_evals, metavar="N",
                        help="stop each search after N model evaluations (default: no limit)")
    search.add_argument("--prune", action="store_true",
                        help="after finding a counterfactual, drop regions that are not needed")
    search.add_argument("--seed", type=seed, default=DEFAULTS.seed,
                        help=f"seed of the random mode (default: {DEFAULTS.seed})")
    search.add_argument("--check", dest="checks", type=checks, default=DEFAULTS.checks,
                        metavar="CHECK[,CHECK...]|none",
                        help="checks run on each counterfactual after the search: verify, fills, "
                             "minimal, model:SPEC (a second model), comma-separated, or none "
                             f"(default: {','.join(DEFAULTS.checks)}; see 'checks' below)")
    _add_strategy_options(search)
    scale = p.add_argument_group("scale (several images are always explained together, sharing model batches)")
    scale.add_argument("--devices", default=None, metavar="all|cuda:0,cuda:1|cpu,cpu",
                       help="one worker process per listed device, each with its own copy of the model; "
                            "'all' uses every GPU. Results are identical to a single-process run")
    scale.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray (pip install 'sedc[ray]'): no ADDRESS starts a fresh local "
                            "Ray; 'auto', HOST:6379 or ray://HOST:10001 joins a running cluster (token "
                            "auth: see 'Ray' below). One actor per GPU (or per CPU worker); results "
                            "stream into the same results.jsonl")
    scale.add_argument("--ray-timeout", type=seconds, default=30.0, metavar="S",
                       help="give up joining the Ray cluster after S seconds: exit 2 with the cause "
                            "(default: 30)")
    out = p.add_argument_group("output")
    _add_out_option(out, "sedc-out")
    out.add_argument("--overwrite", action="store_true",
                     help=f"discard DIR/{RESULTS_FILE} and explain every image again "
                          "(default: resume, skipping images already there)")
    out.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures")
    out.add_argument("--quiet", action="store_true",
                     help="print only errors (no progress bar, per-image lines or summary)")
    add_dataset_options(p)


def _add_demo_parser(commands: Any) -> None:
    """``sedc demo`` and its options."""
    p = commands.add_parser("demo", help="explain sample photos with the built-in model",
                            description="Explain four sample photos with the built-in model.",
                            epilog=DEMO_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_search_options(p)
    _add_device_option(p)
    add_runtime_option(p)
    _add_out_option(p, "sedc-demo")


def _add_search_options(p: Any) -> None:
    """Options shared by explain and demo: mode and time limit."""
    p.add_argument("--mode", dest="modes", type=modes, default=[DEFAULTS.mode], metavar="MODE[,MODE...]",
                   help=f"what removed regions are replaced with: {', '.join(MODES)}, or several, "
                        "comma-separated, to explain each image in each (default: blur; the modes "
                        "are described in 'sedc explain --help')")
    p.add_argument("--max-time", type=max_time, default=CLI_MAX_TIME, metavar="S|none",
                   help=f"stop each image's search after S seconds; 'none' for no limit (default: "
                        f"{CLI_MAX_TIME:g})")


def _add_strategy_options(p: Any) -> None:
    """--search and --beam-width (explain)."""
    p.add_argument("--search", type=search_strategy, default=DEFAULTS.search, metavar="|".join(SEARCHES),
                   help="search strategy: exact (default) returns the paper's answer; fast about "
                        "half the evaluations for an irreducible answer of similar size; beam more "
                        "evaluations, now and then a smaller answer (see 'search' below)")
    p.add_argument("--beam-width", type=beam_width, default=DEFAULTS.beam_width, metavar="W",
                   help=f"--search beam only: sets kept per depth (default: {DEFAULT_BEAM_WIDTH}; "
                        "1 is greedy)")


def _add_device_option(p: Any) -> None:
    """The --device option (explain and demo)."""
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where to run the model (default: auto, CUDA when available)")


def _add_out_option(p: Any, default: str) -> None:
    """The --out option, with its command's default folder."""
    p.add_argument("--out", default=default, metavar="DIR", type=Path,
                   help=f"output folder, created if needed (default: {default})")


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
        "explain": run_explain, "demo": run_demo, "models": run_models, "report": run_report}
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
    from .. import models

    for name, description in models.describe().items():
        default = " (default)" if name == models.DEFAULT_MODEL else ""
        print(f"{name}{default}")
        print(textwrap.fill(description, width=88, initial_indent="    ", subsequent_indent="    "))
    return EXIT_OK


def run_benchmark(argv: list[str]) -> int:
    """``sedc benchmark ...``: hand the arguments to :func:`sedc.cli.benchmark.main`."""
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
    argv = ["explain", str(inputs), "--out", str(args.out), "--mode", ",".join(args.modes),
            "--max-time", str(args.max_time or NO_LIMIT), "--device", args.device, "--runtime", args.runtime,
            "--overwrite"]
    code = run_explain(build_parser().parse_args(argv))
    print(f"Demo figures: {args.out}{os.sep}*.png (inputs in {inputs})")
    return code


def write_demo_photos(folder: Path) -> Path:
    """Save scikit-image's sample photos, resized to the model's input size, as PNGs."""
    import numpy as np
    from PIL import Image

    from ..imaging.samples import sample_photos

    folder.mkdir(parents=True, exist_ok=True)
    for name, photo in sample_photos():
        pixels = np.clip(np.round(photo * 255), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}.png")
    return folder


