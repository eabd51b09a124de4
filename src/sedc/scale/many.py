"""Explaining many images: :func:`iter_explain` and :func:`explain_many` pick a backend.

- one process (default): :class:`~sedc.scale.runner.Runner`, searches sharing model batches;
- ``devices=[...]``: one worker process per device (:mod:`sedc.scale.workers`);
- ``ray_address=...``: Ray actors on a cluster (:mod:`sedc.scale.ray`).

Every backend explains a chunk of images with the same loop and returns exactly what
:func:`sedc.explain` returns for each image alone, and every backend applies the same error
policy: with ``on_error="raise"`` a failed image raises :class:`sedc.ImageError`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

from ..base.deprecated import renamed_argument
from ..base.errors import ImageError, InputError
from ..base.options import ExplainOptions
from ..base.validate import split_loaded_model
from ..core.result import Explanation
from .recovery import check_on_error
from .runner import Runner
from .task import as_tasks


def iter_explain(
    images: Iterable[Any],
    classifier: Any,
    segmentation: Any = None,
    *,
    segmenter: Callable[[Any], Any] | None = None,
    on_error: str = "raise",
    window: int | None = None,
    prefetch_workers: int | None = None,
    devices: Sequence[Any] | str | None = None,
    ray_address: str | None = None,
    on_event: Callable[[Any], None] | None = None,
    device: Any = None,
    options: ExplainOptions | None = None,
    **explain_options: Any,
) -> Iterator[tuple[int, Explanation | ImageError]]:
    """Explain many images, yielding ``(index, Explanation)`` in the order they finish.

    Parameters
    ----------
    images : iterable
        Images (anything :func:`sedc.explain` accepts) or zero-argument callables returning one
        (loaders: a loader's error is reported for that image only), each optionally wrapped in
        a :class:`sedc.scale.Task` that gives it its own mode, target, ... .
    classifier : torch.nn.Module, callable or sedc.models.LoadedModel
        As for :func:`sedc.explain` (a loaded model's class names are attached to every
        result). With ``devices`` or ``ray_address``, a picklable ``nn.Module`` or a picklable
        zero-argument factory returning one, such as :class:`sedc.models.ModelSpec` (each worker
        builds its own copy).
    segmentation : array, or sequence of arrays, optional
        The images' segments: one label map for all images, a list or tuple with one per image,
        or None (``segmenter``, else quickshift). (``segments=``, its name before 0.2, still
        works, with a ``DeprecationWarning``.)
    segmenter : callable, optional
        ``segmenter(image) -> labels`` for images without given segments.
    on_error : {"raise", "return"}
        ``"raise"`` raises :class:`sedc.ImageError` for the first failed image (the original
        exception is its ``__cause__``); ``"return"`` yields ``(index, ImageError)`` and goes on.
    window : int, optional
        Searches run at once (default: 32 on CUDA; 1 on CPU).
    prefetch_workers : int, optional
        Threads that load, segment and fill upcoming images while the model runs (default: 2 on
        CUDA; 0 on CPU). One process only.
    devices : sequence or str, optional
        One worker process per device (``["cuda:0", "cuda:1"]``, ``"all"``, ``"cpu,cpu"``).
    ray_address : str, optional
        Run on Ray instead (:func:`sedc.scale.ray.iter_explain_ray`): ``"local"`` starts a local
        Ray, ``"auto"`` or ``"ray://host:10001"`` joins a cluster. A Ray session that is already
        initialised (``ray.init`` called before) is used as it is and left running.
    on_event : callable, optional
        Ray only: called with a :class:`~sedc.scale.ray_pool.RayEvent` for each actor that dies
        (default: a warning on the ``sedc.scale.ray_pool`` logger). Dead worker processes are
        replaced silently.
    device : str or torch.device, optional
        One process only: where to run (default: the model's device).
    options : ExplainOptions, optional
        The search settings for every image; ``**explain_options`` override single ones.
    **explain_options
        Any :class:`sedc.ExplainOptions` field (``mode``, ``target``, ``batch_size``,
        ``max_time``, ``max_evals``, ``seed``, ``prune``, ``autocast``, ``channels_last``,
        ``max_batch``, ``search``, ``beam_width``, ``checks``, ``check_models``), as for
        :func:`sedc.explain` (limits are per image; the checks of the images that finish together
        share model batches, and second models given as :class:`sedc.models.ModelSpec` are loaded
        once per worker or actor).

    Yields
    ------
    (int, Explanation or ImageError)
    """
    segments = renamed_argument(explain_options, "segments", "segmentation", segmentation, stacklevel=4)
    classifier, class_names = split_loaded_model(classifier)
    results = _iter_backend(images, classifier, segments, segmenter=segmenter, on_error=on_error,
                            window=window, prefetch_workers=prefetch_workers, devices=devices,
                            ray_address=ray_address, on_event=on_event, device=device, options=options,
                            **explain_options)
    for index, result in results:
        if isinstance(result, Explanation):
            result.class_names = class_names
        yield index, result


def _iter_backend(images: Iterable[Any], classifier: Any, segments: Any, *, segmenter: Callable | None,
                  on_error: str, window: int | None, prefetch_workers: int | None,
                  devices: Sequence[Any] | str | None, ray_address: str | None,
                  on_event: Callable[[Any], None] | None, device: Any,
                  options: ExplainOptions | None, **explain_options: Any
                  ) -> Iterator[tuple[int, Explanation | ImageError]]:
    """:func:`iter_explain` on the backend its arguments pick (one process, workers or Ray)."""
    check_on_error(on_error)
    settings = ExplainOptions.build(options, **explain_options)
    if ray_address is not None and devices is not None:
        raise InputError("pass either devices (worker processes) or ray_address (Ray), not both")
    if ray_address is not None:
        from .ray import iter_explain_ray

        yield from iter_explain_ray(images, classifier, segments, address=ray_address, segmenter=segmenter,
                                    on_error=on_error, on_event=on_event, window=window, options=settings)
        return
    if devices is not None:
        from .workers import iter_explain_workers

        yield from iter_explain_workers(images, classifier, segments, devices=devices, segmenter=segmenter,
                                        on_error=on_error, options=settings, window=window)
        return
    runner = Runner(classifier, device, settings, window=window, prefetch_workers=prefetch_workers)
    yield from runner.run(as_tasks(images, segments), segmenter, on_error)


def explain_many(images: Iterable[Any], classifier: Any, segmentation: Any = None, **kwargs: Any
                 ) -> list[Explanation | ImageError]:
    """Explain every image (see :func:`iter_explain`); results in input order."""
    segmentation = renamed_argument(kwargs, "segments", "segmentation", segmentation)
    results = dict(iter_explain(images, classifier, segmentation, **kwargs))
    return [results[i] for i in range(len(results))]
