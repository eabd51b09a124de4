"""``sedc explain``: explain image files and folders, writing each result as it finishes."""

from __future__ import annotations

import argparse
import dataclasses
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
from .dataset import (TARGET_TRUE, Item, accuracy_line, check_dataset_options, ground_truth,
                      is_target_true, modes_of, plan, task_settings, truth_fields)
from .results import RESULTS_FILE, ResultStore
from .runtime import runtime_module

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
    total: int = 0  # images x modes
    skipped: int = 0
    n_modes: int = 1
    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # extra summary lines (Ray's actor deaths)
    started: float = field(default_factory=time.perf_counter)


def run_explain(args: argparse.Namespace) -> int:
    """``sedc explain``: explain every image, writing results as each one finishes."""
    from ..io import image_id

    check_options(args)
    check_dataset_options(args)
    images = find_inputs(args.paths)
    loaded = load_model(args)
    target = resolve_target(args.target, loaded.labels)
    truth = ground_truth(args.ground_truth, images, loaded.labels)  # before any search
    module, runtime = runtime_module(args, loaded.module, loaded.input_size)
    loaded = dataclasses.replace(loaded, module=module)
    settings = {"model": loaded.name, "segmentation": segmentation_name(args.segmentation, args.segments),
                "target": target, "runtime": runtime, "preprocessing": loaded.geometry.describe()}
    store = ResultStore(args.out, overwrite=args.overwrite)
    store.check_settings(settings)
    modes = modes_of(args)
    todo, skipped = plan(images, [image_id(path) for path in images], modes, truth, store.done)
    run = Run(store, loaded.labels, settings, args.quiet, total=len(images) * len(modes), skipped=skipped,
              n_modes=len(modes))
    if todo:  # nothing left to do starts no backend (no Ray session either)
        explain_all(todo, loaded, args, run)
    if not args.quiet:
        print_summary(run)
    if args.report:
        from .report import write_run_report

        write_run_report(store.folder, quiet=args.quiet)
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


def resolve_target(query: str | None, labels: list[str]) -> int | str | None:
    """The class id of ``--target`` (None without one, ``"true"`` for each image's true class);
    usage error for an unknown class."""
    if query is None:
        return None
    if is_target_true(query):
        return TARGET_TRUE
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


def stream_results(tasks: list[Any], loaded: Any, args: argparse.Namespace, session: Any = None) -> Any:
    """``(index, result)`` pairs from one process, worker processes (--devices) or Ray (--ray,
    on the cluster ``session`` joined: see :mod:`sedc.cli.ray_session`).

    ``tasks`` are :class:`sedc.scale.Task` s: each image's mode and target ride with it.
    """
    from ..scale import iter_explain

    remote = args.ray is not None or args.devices is not None
    on_torch = getattr(loaded.module, "runtime", "torch") == "torch"  # an OnnxClassifier pickles itself
    classifier = model_factory(args) if remote and on_torch else loaded.module
    segmenter = make_segmenter(args.segmentation, args.segments)
    if args.ray is not None:
        from .ray_session import stream_ray

        return stream_ray(tasks, classifier, segmenter, explain_options(args), session)
    return iter_explain(tasks, classifier, segmenter=segmenter, on_error="return", devices=args.devices,
                        options=explain_options(args))


def explain_options(args: argparse.Namespace) -> ExplainOptions:
    """The search settings given on the command line, shared by every image (each image's mode
    and target come with its task)."""
    return ExplainOptions(mode=modes_of(args)[0], batch_size=args.batch_size,
                          max_time=args.max_time, max_evals=args.max_evals, prune=args.prune,
                          seed=args.seed)


def make_tasks(items: list[Item], loaded: Any, target: int | str | None) -> list[Any]:
    """One :class:`sedc.scale.Task` per item: a lazy loader with the item's mode and target."""
    from ..scale import Task

    tasks = []
    for item in items:
        options, untargeted_if_predicted = task_settings(item, target)
        tasks.append(Task(functools.partial(load_for_model, item.path, loaded.geometry), options,
                          untargeted_if_predicted))
    return tasks


def explain_all(items: list[Item], loaded: Any, args: argparse.Namespace, run: Run) -> None:
    """Explain ``items`` (image, mode) and record each as it finishes (figure, then JSON row)."""
    from tqdm import tqdm

    from ..io import safe_stem
    from .ray_session import backend_session

    report = None if args.quiet else functools.partial(tqdm.write, file=sys.stderr)
    with backend_session(args, run.store.folder, report) as session:
        results = stream_results(make_tasks(items, loaded, run.settings["target"]), loaded, args, session)
        pending = set(range(len(items)))
        with tqdm(total=len(items), unit="image", file=sys.stderr,
                  disable=True if args.quiet else None) as bar:
            write = functools.partial(bar.write, file=session.stdout)
            try:
                for index, result in results:
                    pending.discard(index)
                    stem = None if args.no_figures else safe_stem(items[index].stem, run.store.stems)
                    record(run, items[index], result, stem, write)
                    bar.update()
            except UsageError:  # the Ray cluster is gone: one line and exit 2, no image marked failed
                raise
            except Exception as err:  # a failure of the whole run: name the images left undone
                for index in sorted(pending):
                    report_error(run, items[index].image, f"not processed: {describe_error(err)}",
                                 items[index].mode)
        run.notes += session.summary()


def load_for_model(path: Path, geometry: Any) -> Any:
    """The image the model sees: the file at full size, resized and cropped by the model's rule."""
    from ..io import load_image

    return geometry.prepare(load_image(path))


def record(run: Run, item: Item, result: Any, stem: str | None, write: Callable[[str], None]) -> None:
    """Write one image's figure and result row, or report its failure."""
    image = item.image
    if isinstance(result, BaseException):
        report_error(run, image, describe_error(result), item.mode)
        return
    figure = None
    if stem is not None:
        figure = f"{stem}.png"
        try:
            result.plot(run.labels, path=run.store.folder / figure, title=figure_title(run.settings))
        except Exception as err:  # a row without its figure would not be retried: fail the image
            report_error(run, image, f"cannot write figure {figure}: {describe_error(err)}", item.mode)
            return
    row = result_row(image, result, run.labels, run.settings, figure, item.true_class)
    run.store.append(row)
    run.rows.append(row)
    if not run.quiet:
        write(status_line(row, show_mode=run.n_modes > 1))


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


def report_error(run: Run, image: str, reason: str, mode: str | None = None) -> None:
    """Name a failed image (and its mode) on stderr and in errors.jsonl."""
    from tqdm import tqdm

    tqdm.write(f"error: {image}: {reason}", file=sys.stderr)
    run.store.append_error({"image": image, "mode": mode, "error": reason})
    run.failed.append(image)


def result_row(image: str, e: Any, labels: list[str], settings: dict[str, Any],
               figure: str | None, true_class: int | None = None) -> dict[str, Any]:
    """The results.jsonl object of one explanation."""
    from ..visualize import class_name

    d = e.to_dict()
    target = d["target"]
    return {
        "image": image, "found": d["found"],
        "original_class": d["original_class"], "original_label": class_name(d["original_class"], labels),
        "original_score": d["original_score"],
        **truth_fields(true_class, d["original_class"], labels),
        "new_class": d["new_class"], "new_label": class_name(d["new_class"], labels),
        "new_score": d["new_score"], "original_class_score": d["original_class_score"],
        "segments": d["segments"], "n_segments_total": d["n_segments_total"],
        "n_evaluations": d["n_evaluations"], "elapsed_s": round(d["elapsed_s"], 4),
        "mode": d["mode"], "stop_reason": d["stop_reason"], "target": target,
        "target_label": None if target is None else class_name(target, labels),
        "target_setting": settings["target"], "figure": figure,
        "model": settings["model"], "segmentation": settings["segmentation"],
        "runtime": settings.get("runtime", "torch"),
        "preprocessing": settings.get("preprocessing"),
    }


def figure_title(settings: dict[str, Any]) -> str:
    """The figure's caption: the model and the runtime that ran it."""
    return f"{settings['model']} on {settings.get('runtime', 'torch')}"


def status_line(row: dict[str, Any], show_mode: bool = False) -> str:
    """``chelsea.png: Egyptian cat 0.79 -> tabby 0.41, 3 regions, 57 evals, 4.1 s``
    (``chelsea.png [mean]: ...`` with ``show_mode``)."""
    before = f"{row['original_label']} {row['original_score']:.2f}"
    n = len(row["segments"])
    if row["found"]:
        change = f"{before} -> {row['new_label']} {row['new_score']:.2f}, {plural(n, 'region')}"
    else:
        toward = f" toward {row['target_label']}" if row.get("target_label") else ""
        change = f"{before}, no counterfactual{toward} ({row['stop_reason']})"
    name = f"{row['image']} [{row['mode']}]" if show_mode else row["image"]
    return f"{name}: {change}, {row['n_evaluations']} evals, {row['elapsed_s']:.1f} s"


def print_summary(run: Run) -> None:
    """Counts, medians, total time and where the outputs are."""
    rows = run.rows
    found = [row for row in rows if row["found"]]
    what = plural(run.total, "image") if run.n_modes == 1 else f"{run.total} (image, mode) pairs"
    parts = [f"explained {len(rows)} of {what}"]
    if rows:
        parts.append(f"found {len(found)}/{len(rows)}")
    if run.skipped:
        parts.append(f"skipped {run.skipped} already in {RESULTS_FILE} (--overwrite redoes them)")
    if run.failed:
        parts.append(f"{len(run.failed)} failed (listed in {run.store.errors})")
    print("Done: " + ", ".join(parts) + ".")
    for note in run.notes:
        print(note)
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
    accuracy = accuracy_line(rows)
    if accuracy:
        print(accuracy)
    figures = f"; figures: {run.store.folder}{os.sep}*.png" if any(r["figure"] for r in rows) else ""
    print(f"Results: {run.store.results}{figures}")


def plural(n: int, word: str) -> str:
    """``"1 region"``, ``"3 regions"``."""
    return f"{n} {word}{'s' * (n != 1)}"


