"""``sedc explain``: explain image files and folders, writing each result as it finishes."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..base.errors import InputError, UsageError
from ..base.options import CHECKS, ExplainOptions, check_search_width, search_name
from ..imaging.io import IMAGE_EXTENSIONS
from ..imaging.segmentation import DEFAULT_PARAMS, METHODS
from .common import EXIT_FAILED, EXIT_OK
from .dataset import (
    TARGET_TRUE,
    PlannedRow,
    check_dataset_options,
    ground_truth,
    is_target_true,
    plan_rows,
    task_settings,
)
from .model import check_model_options, load_check_models, load_model, model_spec
from .results import ResultStore
from .rows import Run, figure_title, print_summary, result_row, status_line, unverified_warning
from .runtime import runtime_module

SEGMENTS_METHODS = tuple(m for m in METHODS if "n_segments" in DEFAULT_PARAMS[m])  # take --segments


# --------------------------------------------------------------------------------------------
# sedc explain
# --------------------------------------------------------------------------------------------


def run_explain(args: argparse.Namespace) -> int:
    """``sedc explain``: explain every image, writing results as each one finishes."""
    from ..imaging.io import image_id

    check_options(args)
    check_dataset_options(args)
    images = find_inputs(args.paths)
    loaded = load_model(args)
    second = load_check_models(args)  # --check model:SPEC, loaded (or refused) before any search
    target = resolve_target(args.target, loaded.class_names)
    truth = ground_truth(args.ground_truth, images, loaded.class_names)  # before any search
    module, runtime = runtime_module(args, loaded.module, loaded.input_size)
    loaded = dataclasses.replace(loaded, module=module)
    settings = {"model": loaded.name, "segmentation": segmentation_name(args.segmentation, args.segments),
                "target": target, "runtime": runtime, "preprocessing": loaded.geometry.describe(),
                "search": search_name(args.search, args.beam_width)}
    store = ResultStore(args.out, overwrite=args.overwrite)
    store.check_settings(settings)
    modes = args.modes
    todo, skipped = plan_rows(images, [image_id(path) for path in images], modes, truth, store.done)
    run = Run(store, loaded.class_names, settings, args.quiet, total=len(images) * len(modes), skipped=skipped,
              n_modes=len(modes))
    if todo:  # nothing left to do starts no backend (no Ray session either)
        explain_all(todo, loaded, args, run, second)
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
    try:
        check_search_width(args.search, args.beam_width)
    except InputError:
        raise UsageError(f"--beam-width applies to --search beam only, not to --search {args.search}") from None
    check_model_options(args)


def find_inputs(paths: Sequence[str]) -> list[Path]:
    """The image files named by ``paths`` (files and folders); usage error when there are none."""
    from ..imaging.io import find_images

    try:
        images = find_images(list(paths))
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not images:
        raise UsageError(f"no images found in {', '.join(map(str, paths))} (looked for files ending "
                         f"in {', '.join(IMAGE_EXTENSIONS)})")
    return images


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


def stream_results(tasks: list[Any], loaded: Any, args: argparse.Namespace, session: Any,
                   second: Sequence[tuple[Any, Any]] = ()) -> Any:
    """``(index, result)`` pairs from :func:`sedc.scale.iter_explain`: one process, worker
    processes (--devices) or Ray (--ray, on the cluster ``session`` joined: see
    :mod:`sedc.cli.ray_session`, which also hears of the actors that die).

    ``tasks`` are :class:`sedc.scale.Task` s: each image's mode and target ride with it. ``second``
    holds the ``--check model:SPEC`` models as ``(ModelSpec, LoadedModel)``: workers and actors get
    the spec and load their own copy, one process uses the loaded model.
    """
    from ..scale import iter_explain

    remote = args.ray is not None or args.devices is not None
    on_torch = getattr(loaded.module, "runtime", "torch") == "torch"  # an OnnxClassifier pickles itself
    classifier = model_spec(args) if remote and on_torch else loaded.module
    segmenter = make_segmenter(args.segmentation, args.segments)
    check_models = [spec if remote else model for spec, model in second]
    return _cluster_loss_is_a_usage_error(iter_explain(
        tasks, classifier, segmenter=segmenter, on_error="return", devices=args.devices,
        ray_address=args.ray, on_event=session.on_event, options=explain_options(args, check_models)))


def _cluster_loss_is_a_usage_error(results: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    """``results``, with a Ray cluster that can no longer run actors as a one-line UsageError."""
    from ..base.errors import RayClusterError

    try:
        yield from results
    except RayClusterError as err:  # the whole run, not its images: one line, exit 2
        raise UsageError(str(err)) from None


# The ExplainOptions fields set on the command line (``args`` attribute -> option). The mode and
# the target are per image (each row's task carries its own), so the run's options leave them out.
OPTION_FLAGS = {"batch_size": "batch_size", "max_time": "max_time", "max_evals": "max_evals",
                "prune": "prune", "seed": "seed",
                "search": "search", "beam_width": "beam_width"}


def explain_options(args: argparse.Namespace, check_models: Sequence[Any] = ()) -> ExplainOptions:
    """The search settings given on the command line, shared by every image; the argument types
    already applied the options' rules, so the values are trusted here. ``--check`` becomes
    ``checks`` (its names) and ``check_models`` (the models of its ``model:SPEC`` entries)."""
    options = ExplainOptions().with_checked({option: getattr(args, dest) for dest, option in OPTION_FLAGS.items()})
    names = tuple(name for name in args.checks if name in CHECKS)
    return options.with_checked({"checks": names, "check_models": tuple(check_models)})


def make_tasks(planned: list[PlannedRow], loaded: Any, target: int | str | None) -> list[Any]:
    """One :class:`sedc.scale.Task` per planned row: a lazy loader with the row's mode and target."""
    from ..scale import Task

    tasks = []
    for row in planned:
        options, untargeted_if_predicted = task_settings(row, target)
        tasks.append(Task(functools.partial(load_for_model, row.path, loaded.geometry), options,
                          untargeted_if_predicted))
    return tasks


def explain_all(planned: list[PlannedRow], loaded: Any, args: argparse.Namespace, run: Run,
                second: Sequence[tuple[Any, Any]] = ()) -> None:
    """Explain the planned (image, mode) rows and record each as it finishes (figure, then row)."""
    from tqdm import tqdm

    from ..imaging.io import safe_stem
    from .ray_session import backend_session

    report = None if args.quiet else functools.partial(tqdm.write, file=sys.stderr)
    with backend_session(args, run.store.folder, report) as session:
        results = stream_results(make_tasks(planned, loaded, run.settings["target"]), loaded, args, session,
                                 second)
        pending = set(range(len(planned)))
        with tqdm(total=len(planned), unit="image", file=sys.stderr,
                  disable=True if args.quiet else None) as bar:
            write = functools.partial(bar.write, file=session.stdout)
            try:
                for index, result in results:
                    pending.discard(index)
                    stem = None if args.no_figures else safe_stem(planned[index].stem, run.store.stems)
                    record(run, planned[index], result, stem, write)
                    bar.update()
            except UsageError:  # the Ray cluster is gone: one line and exit 2, no image marked failed
                raise
            except Exception as err:  # a failure of the whole run: name the images left undone
                for index in sorted(pending):
                    report_error(run, planned[index].image, f"not processed: {describe_error(err)}",
                                 planned[index].mode)
        run.notes += session.summary()


def load_for_model(path: Path, geometry: Any) -> Any:
    """The image the model sees: the file at full size, resized and cropped by the model's rule."""
    from ..imaging.io import load_image

    return geometry.prepare(load_image(path))


def record(run: Run, planned: PlannedRow, result: Any, stem: str | None, write: Callable[[str], None]) -> None:
    """Write one image's figure and result row, or report its failure."""
    image = planned.image
    if isinstance(result, BaseException):
        report_error(run, image, describe_error(result), planned.mode)
        return
    figure = None
    if stem is not None:
        figure = f"{stem}.png"
        try:
            result.plot(run.class_names, path=run.store.folder / figure, title=figure_title(run.settings))
        except Exception as err:  # a row without its figure would not be retried: fail the image
            report_error(run, image, f"cannot write figure {figure}: {describe_error(err)}", planned.mode)
            return
    row = result_row(image, result, run.class_names, run.settings, figure, planned.true_class)
    run.store.append(row)
    run.rows.append(row)
    if not run.quiet:
        write(status_line(row, show_mode=run.n_modes > 1))
    warning = unverified_warning(row, run.class_names, show_mode=run.n_modes > 1)
    if warning:
        from tqdm import tqdm

        tqdm.write(warning, file=sys.stderr)


def describe_error(err: BaseException) -> str:
    """A one-line reason for a failed image."""
    from ..base.errors import ImageError, ImageLoadError

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


