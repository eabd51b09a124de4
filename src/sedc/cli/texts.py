"""The command line's help texts (``sedc --help``, ``sedc explain --help``, ...).

The lists of modes and of result fields are made from the tables that define them
(:data:`sedc.base.options.MODE_HELP`, :mod:`sedc.base.schema`), so the help cannot drift.
"""

from __future__ import annotations

import textwrap

from ..base.options import CHECK_HELP, MODE_HELP, SEARCH_HELP, ExplainOptions
from ..base.schema import EXPLANATION_FIELDS, RESULTS_FILE, ROW_ORDER, RUN_FIELDS
from ..imaging.samples import DEMO_PHOTOS, DEMO_SIZE

ROW_HELP = {key: RUN_FIELDS.get(key) or EXPLANATION_FIELDS[key][1] for key in ROW_ORDER}


def _table(entries: dict[str, str], width: int, indent: int = 2, default: str | None = None) -> str:
    """``name  description`` lines, descriptions wrapped to 92 columns."""
    lines = []
    for name, text in entries.items():
        text += " (default)" if name == default else ""
        first = " " * indent + name.ljust(width - 1) + " "
        lines += textwrap.wrap(text, 92, initial_indent=first, subsequent_indent=" " * (indent + width))
    return "\n".join(lines)


CHECKS_EPILOG = f"""\
checks (run on each counterfactual after the search, --check; not in n_evaluations):
{_table({**CHECK_HELP, "model:SPEC": "the unperturbed and the perturbed image through a second model "
         "(any --model spec, with its own input size): transfers when it too leaves its original "
         "class (SEDC) or predicts the target (SEDC-T): 2 evaluations"}, 15, default=",".join(ExplainOptions().checks))}
  the fraction of the image removed (area) is always recorded. An answer that does not verify is
  named on stderr. Example: --check verify,fills,minimal,model:torchvision:resnet50
"""

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
{_table(MODE_HELP, 15, default=ExplainOptions().mode)}
  several modes, comma-separated (--mode mean,blur,inpaint), explain each image in each mode:
  one row per image and mode; figures are then named <name>_<mode>.png

segmentation (how the image is cut into regions, --segmentation):
  quickshift     the SEDC paper's setting (kernel_size=4, max_dist=200, ratio=0.2); default
  slic           compact superpixels; --segments N sets roughly how many (default 50)
  felzenszwalb   graph-based regions of similar colour
  grid           a regular grid of about --segments N cells (default 49, i.e. 7x7)

{CHECKS_EPILOG}
search (how the regions to remove are looked for, --search; results record it):
{_table(SEARCH_HELP, 15, default=ExplainOptions().search)}
  Measured with 'sedc benchmark --search' on 14 photos (README, Performance).

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
  DIR/{RESULTS_FILE}    one JSON object per image and mode, with the fields:
{_table(ROW_HELP, 25, indent=4)}
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
  sedc explain scans/ --model mynet.pt --input-size 128 --normalize half --class-names classes.txt \\
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
