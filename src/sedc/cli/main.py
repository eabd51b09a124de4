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
from ..options import MODES
from .common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, batch_size, input_size, max_time,
                     positive_int, seconds)
from .dataset import add_dataset_options, mode_list
from .explain import SEGMENTATIONS, NORMALIZE_CHOICES, run_explain
from .report import add_report_parser, run_report
from .results import RESULTS_FILE
from .runtime import add_runtime_option

DEMO_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
DEMO_SIZE = 224


# --------------------------------------------------------------------------------------------
# Help texts
# --------------------------------------------------------------------------------------------

MAIN_EPILOG = """\
examples:
  sedc demo                           explain four sample photos, figures in sedc-demo/
  sedc explain cat.jpg photos/        explain a photo and every image under photos/
  sedc explain photos/ --target tabby ask what must change for the model to say 'tabby'
  sedc explain val/ --ground-truth folders --target true --report
                                      audit a labelled folder: misclassifications explained
                                      toward their true class, then report.html
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
  several modes, comma-separated (--mode mean,blur,inpaint), explain each image in each mode:
  one row per image and mode; figures are then named <name>_<mode>.png

segmentation (how the image is cut into regions, --segmentation):
  quickshift     the SEDC paper's setting (kernel_size=4, max_dist=200, ratio=0.2); default
  slic           compact superpixels; --segments N sets roughly how many (default 50)
  felzenszwalb   graph-based regions of similar colour
  grid           a regular grid of about --segments N cells (default 49, i.e. 7x7)

--target accepts a class id (281) or a class name, case-insensitive, underscores as spaces
('tabby', 'Egyptian_cat'); for ImageNet models every synonym works ('tabby cat'). An unknown
name exits with status 2 and suggests close names. --target true (needs --ground-truth)
explains each misclassified image toward its true class (SEDC-T) and each correctly
classified one with plain SEDC (its row's target is null).

ground truth (--ground-truth): 'folders' reads each image's class from its parent folder
(the ImageFolder layout val/n02123045/cat.jpg): an ImageNet wnid (ImageNet-1k models; the
table ships with sedc), or a class name or id of the model. FILE.csv holds rows 'path,label'
(an optional 'path,label' header; labels as for folders); a relative path is read relative to
the CSV's folder, else to the current folder, and belongs to the image that is the same file.
Images without a row get no ground truth (a warning counts them). Unknown labels exit with
status 2, before any image is explained, and suggest close names.

models (--model): the built-in model by name (see 'sedc models'), or your own:
  torchvision:NAME[:WEIGHTS]   torchvision classifier, pretrained (torchvision:resnet50)
  timm:NAME                    timm classifier, pretrained (timm:resnet18, timm:hf-hub:ORG/NAME)
  hf:ORG/NAME | hf:DIR         Hugging Face image classifier, Hub id or save_pretrained folder
  FILE.onnx | FILE.pt2 | FILE.pt   ONNX model, torch.export program, TorchScript file
  package.module:factory       factory() returns a torch.nn.Module (current folder importable)
torchvision, timm and Hugging Face models bring their own resize, centre crop, normalisation
and class names: the search runs on the image the model sees, and the figures show it. Files
and factories take --input-size (default 224) and --normalize (default imagenet). Weights come
from the local caches (TORCH_HOME, HF_HOME; HF_HUB_OFFLINE=1 forbids downloads); a model that is
not there exits with status 2 and says how to get it. WARNING: model files and module:factory
specs run code on your machine: only load models you trust.

runtime (--runtime): auto (default) runs the model on ONNX Runtime when it runs on the CPU and
'sedc[onnx]' is installed, else on torch. The model is exported once to ONNX and cached in
$SEDC_CACHE or ~/.cache/sedc. Its scores differ from torch's by about 1e-7, so answers equal
torch's unless two candidates tie that closely; each result row records the runtime.

outputs (in --out DIR, default sedc-out/), written as soon as each image is done:
  DIR/results.jsonl    one JSON object per image and mode: image (its path as given or
                       found), found, original_class/_label/_score, new_class/_label/_score,
                       segments (removed region ids), n_segments_total, n_evaluations,
                       elapsed_s, mode, stop_reason, target, target_label,
                       target_setting (--target as given: id, "true" or null), figure,
                       model, segmentation, runtime (torch or onnxruntime),
                       preprocessing (how the photo became the model's input: resize,
                       crop, mean/std), and true_class, true_label, correct (null
                       without --ground-truth)
  DIR/<name>.png       figure: original | removed regions | counterfactual (not with
                       --no-figures)
  DIR/errors.jsonl     the images that failed in the latest run, with the mode and the reason
                       (also printed to stderr); failed images are never written to results.jsonl
  DIR/report.html      with --report: the run summed up (see 'sedc report --help'), and
  DIR/summary.json     its figures as JSON

resuming: run the same command again and the (image, mode) pairs already in {RESULTS_FILE}
are skipped (failed ones are retried), so an interrupted run continues where it stopped; a run
with more modes adds only the missing ones. The results of a resumed run must use the same
model, segmentation and target; --overwrite discards the previous results and explains every
image again.

Ray (--ray ADDRESS): ADDRESS is auto (the cluster of RAY_ADDRESS, or the one running on
this machine), HOST:PORT (the head's GCS port, 6379 by default) or ray://HOST:PORT (Ray
Client, port 10001); no ADDRESS starts a fresh local Ray. Clusters with token auth (Ray >=
2.52; 'ray start' turns it on when ~/.ray/auth_token exists) need their token here, in
RAY_AUTH_TOKEN, in the file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token ('ray
get-auth-token' on the head prints it); sedc turns on RAY_AUTH_MODE=token when the cluster
asks for it (RAY_AUTH_MODE=disabled keeps it off). A cluster that cannot be reached, is not
Ray or refuses the token stops the run within --ray-timeout seconds with exit status 2 and
one line naming the address and the cause (refused, timeout, unreachable, auth, ...); no
image is marked failed. When an actor or a whole node dies, the images it held go back to
the queue and are spread over the surviving actors (said on stderr and in the summary); an
image is given up ("Ray actor died twice") only when its actor dies on it a second time,
with it alone; a cluster where no actor can start for 300 s ends the run with exit 2 (done
images are kept). Ray's own messages go to DIR/ray.log, never to stdout. Resuming with
nothing left to do does not start or join Ray.

exit status: 0 every image was explained (with or without a counterfactual); 1 some image
could not be read or failed (named on stderr; the others are still written); 2 usage error
(bad option, unknown --target, model that cannot be loaded, no images found) or a Ray
cluster that cannot be joined or can no longer run actors.

examples:
  sedc explain chelsea.png
  sedc explain photos/ --mode mean --max-time 30 --out results/
  sedc explain photos/ --target "tiger cat" --prune
  sedc explain scans/ --model mynet.pt --input-size 128 --normalize half --labels classes.txt \\
      --segmentation grid --segments 16
  sedc explain photos/ --model mypackage.models:build_net --device cuda
  sedc explain val/ --ground-truth folders --target true --mode mean,blur --report
  sedc explain photos/ --ground-truth labels.csv --max-time 30
  sedc explain photos/ --model timm:convnext_tiny --target "tiger cat"
  sedc explain photos/ --model hf:google/vit-base-patch16-224
  sedc explain photos/ --model torchvision:resnet50:IMAGENET1K_V2
  sedc explain val/ --devices all          one worker process per GPU
  sedc explain val/ --ray auto             spread over a running Ray cluster
  RAY_AUTH_TOKEN=... sedc explain val/ --ray head:6379 --ray-timeout 10
"""

MODELS_EPILOG = """\
Besides these you can pass your own model to 'sedc explain --model': torchvision:NAME[:WEIGHTS],
timm:NAME, hf:ORG/NAME or hf:DIR (with their own preprocessing and labels), FILE.onnx, FILE.pt2,
FILE.pt or 'package.module:factory' (see 'sedc explain --help').

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
                        ".jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff files")
    model = p.add_argument_group("model")
    model.add_argument("--model", default=None, metavar="SPEC",
                       help="built-in model name (default: efficientnet-lite0), torchvision:NAME, "
                            "timm:NAME, hf:ORG/NAME, hf:DIR, FILE.onnx/.pt2/.pt, or "
                            "'package.module:factory'. TorchScript files and module:factory specs "
                            "run code: only load what you trust. See 'Your own model' in the README")
    model.add_argument("--input-size", type=input_size, default=None, metavar="S|HxW",
                       help="model files and factories: input image size, S (square) or HxW "
                            "(default 224, or the size fixed in a .pt2/.onnx file)")
    model.add_argument("--normalize", choices=NORMALIZE_CHOICES, default=None,
                       help="model files and factories: input normalisation, imagenet (default), half "
                            "(mean=std=0.5) or none ([0, 1] pixels)")
    model.add_argument("--labels", default=None, metavar="imagenet|FILE",
                       help="your models: 'imagenet' (the ImageNet-1k names) or a text file with one "
                            "class name per line, in output order (default: the model's own labels, "
                            "else the class ids)")
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
    search.add_argument("--batch-size", type=batch_size, default="auto", metavar="auto|N",
                        help="candidate images per model call (default: auto, measured)")
    search.add_argument("--max-evals", type=positive_int, default=None, metavar="N",
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
    p.add_argument("--mode", type=mode_list, default="blur", metavar="MODE[,MODE...]",
                   help=f"what removed regions are replaced with: {', '.join(MODES)}, or several, "
                        "comma-separated, to explain each image in each (default: blur; the modes "
                        "are described in 'sedc explain --help')")
    p.add_argument("--max-time", type=max_time, default=60.0, metavar="S",
                   help="stop each image's search after S seconds; 0 for no limit (default: 60)")


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
    """``sedc benchmark ...``: hand the arguments to :func:`sedc.benchmark.main`."""
    try:
        from ..benchmark import main as benchmark_main
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
            "--max-time", str(args.max_time or 0), "--device", args.device, "--runtime", args.runtime,
            "--overwrite"]
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


