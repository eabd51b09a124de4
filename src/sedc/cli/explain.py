"""``sedc explain``: explain image files and folders, writing each result as it finishes."""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..options import ExplainOptions
from .common import EXIT_FAILED, EXIT_OK, UsageError
from .results import RESULTS_FILE, ResultStore

SEGMENTATIONS = ("quickshift", "slic", "felzenszwalb", "grid")
SEGMENTS_METHODS = ("slic", "grid")  # the methods that take --segments (n_segments)
NORMALIZE_CHOICES = ("imagenet", "half", "none")


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
    from ..io import image_id

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
    check_model_options(args)


def check_model_options(args: argparse.Namespace) -> None:
    """--input-size, --normalize and --labels against what ``--model`` brings itself."""
    from ..models import is_library_spec

    flags = (("--input-size", args.input_size), ("--normalize", args.normalize), ("--labels", args.labels))
    if is_builtin(args.model):
        given = [flag for flag, value in flags if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to your own models (see --model); the "
                             f"built-in {args.model or 'model'} sets them")
    elif is_library_spec(args.model):
        given = [flag for flag, value in flags[:2] if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} do not apply to {args.model.strip()}: it brings its "
                             "own resize, crop and normalisation")


def is_builtin(spec: str | None) -> bool:
    """Whether ``--model`` names a built-in model (None: the default one)."""
    from .. import models

    return spec is None or spec.strip().lower() in models.available()


def find_inputs(paths: Sequence[str]) -> list[Path]:
    """The image files named by ``paths`` (files and folders); usage error when there are none."""
    from ..io import find_images

    try:
        images = find_images(list(paths))
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not images:
        raise UsageError(f"no images found in {', '.join(map(str, paths))} (looked for files ending "
                         "in .jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff)")
    return images


def load_model(args: argparse.Namespace) -> Any:
    """Load the built-in or user model named by ``--model`` on ``--device``.

    Its warnings (a factory's model in training mode) are printed as one line each, and a note
    says when a model file or factory is normalised with the default ImageNet statistics.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = _load(args.model, args.input_size, args.normalize, args.labels, args.device)
    for warning in caught:
        print(f"sedc explain: warning: {one_line(str(warning.message))}", file=sys.stderr)
    if default_normalization(args):
        print(f"sedc explain: note: {args.model} carries no preprocessing: images are resized to "
              f"{size_text(loaded.input_size)} and normalised with the ImageNet mean and std "
              "(set --input-size and --normalize to match its training)", file=sys.stderr)
    return loaded


def _load(spec: str | None, input_size: Any, normalize: str | None, labels: str | None,
          device: Any) -> Any:
    """``models.load`` or ``models.load_user_model``, every failure as a one-line UsageError."""
    from .. import models

    try:
        if is_builtin(spec):
            return models.load(spec or models.DEFAULT_MODEL, device=device)
        return models.load_user_model(spec, input_size=input_size, normalize=normalize,
                                      labels=labels, device=device)
    except (ValueError, TypeError) as err:
        raise UsageError(f"{one_line(str(err))}{builtin_hint(spec)}") from None
    except Exception as err:  # user factories can raise anything
        raise UsageError(f"cannot load model {spec!r}: {type(err).__name__}: {one_line(str(err))}") from None


def one_line(text: str) -> str:
    """The first line of a message (library errors can run over many)."""
    lines = text.strip().splitlines()
    return lines[0] if lines else text


def default_normalization(args: argparse.Namespace) -> bool:
    """Whether a model file or factory runs with the default ``--normalize imagenet``."""
    from ..models import is_library_spec

    return not is_builtin(args.model) and not is_library_spec(args.model) and args.normalize is None


def size_text(size: Any) -> str:
    """``224x224`` for 224, ``224x320`` for (224, 320)."""
    if size is None:
        return "their own aspect ratio"
    height, width = (size, size) if isinstance(size, int) else size
    return f"{height}x{width}"


def builtin_hint(spec: str | None) -> str:
    """Name the built-in models when ``spec`` is neither a built-in, a file nor a factory spec."""
    from .. import models

    if spec is None or ":" in spec or Path(spec).exists():
        return ""
    return f" (built-in models: {', '.join(models.available())})"


def resolve_target(query: str | None, labels: list[str]) -> int | None:
    """The class id of ``--target`` (None without one); usage error for an unknown class."""
    if query is None:
        return None
    from ..models import resolve_class

    try:
        return resolve_class(query, labels)
    except ValueError as err:
        raise UsageError(f"--target: {err}") from None


def segmentation_name(method: str, n_segments: int | None) -> str:
    """How the segmentation is recorded in the results: ``"slic(n_segments=50)"``."""
    return method if n_segments is None else f"{method}(n_segments={n_segments})"


def make_segmenter(method: str, n_segments: int | None) -> Callable[[Any], Any]:
    """A function image -> label map for ``--segmentation`` and ``--segments``."""
    from ..imaging.segmentation import segment

    params = {} if n_segments is None else {"n_segments": n_segments}
    return functools.partial(_segment_image, segment, method, params)


def _segment_image(segment: Callable[..., Any], method: str, params: dict[str, Any], image: Any) -> Any:
    """Segment one image (a module-level function, so the segmenter pickles for worker processes)."""
    return segment(image, method, **params)


def model_factory(args: argparse.Namespace) -> Callable[[], Any]:
    """A picklable zero-argument factory of the model, for worker processes and Ray actors."""
    return functools.partial(_build_module, args.model, args.input_size, args.normalize, args.labels)


def _build_module(spec: str | None, input_size: Any, normalize: str | None,
                  labels: str | None) -> Any:
    """Build the classifier module of ``--model`` on the CPU (the worker moves it).

    The parent loaded it first and printed its warnings: the workers stay quiet.
    """
    from .. import models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_builtin(spec):
            return models.load(spec or models.DEFAULT_MODEL, device="cpu").module
        return models.load_user_model(spec, input_size=input_size, normalize=normalize,
                                      labels=labels, device="cpu").module


def stream_results(loaders: list[Any], loaded: Any, args: argparse.Namespace, target: int | None) -> Any:
    """``(index, result)`` pairs from one process, worker processes (--devices) or Ray (--ray)."""
    from ..scale import iter_explain

    remote = args.ray is not None or args.devices is not None
    classifier = model_factory(args) if remote else loaded.module
    return iter_explain(loaders, classifier, segmenter=make_segmenter(args.segmentation, args.segments),
                        on_error="return", devices=args.devices, ray_address=args.ray,
                        options=explain_options(args, target))


def explain_options(args: argparse.Namespace, target: int | None) -> ExplainOptions:
    """The search settings given on the command line."""
    return ExplainOptions(mode=args.mode, target=target, batch_size=args.batch_size,
                          max_time=args.max_time, max_evals=args.max_evals, prune=args.prune,
                          seed=args.seed)


def explain_all(images: list[Path], loaded: Any, args: argparse.Namespace, run: Run) -> None:
    """Explain ``images`` and record each as it finishes (figure first, then its JSON row)."""
    from tqdm import tqdm

    from ..io import image_id, safe_stem

    ids = [image_id(path) for path in images]
    loaders = [functools.partial(load_for_model, path, loaded.geometry) for path in images]
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


def load_for_model(path: Path, geometry: Any) -> Any:
    """The image the model sees: the file at full size, resized and cropped by the model's rule."""
    from ..io import load_image

    return geometry.prepare(load_image(path))


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
    from ..io import ImageLoadError
    from ..result import ImageError

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
    from ..visualize import class_name

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


