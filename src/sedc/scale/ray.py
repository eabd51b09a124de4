"""Explaining many images on a Ray cluster: :func:`iter_explain_ray` and :func:`explain_many_ray`.

The same work as :func:`sedc.scale.iter_explain` with ``devices=[...]``, spread over Ray actors
instead of local worker processes. Each actor holds its own copy of the model (one actor per
GPU on a cluster with GPUs, else a few CPU actors) and explains chunks of images with
cross-image batching (:func:`sedc.scale.chunk.run_chunk`); results are exactly what
:func:`sedc.explain` returns for each image alone.

Connecting (:mod:`sedc.scale.ray_connect`): ``address`` may be ``"local"`` (a new local
instance), ``"auto"``, ``"HOST:PORT"`` (the GCS) or ``"ray://HOST:PORT"`` (Ray Client). A
cluster that cannot be reached, is not Ray or refuses the token raises
:class:`~sedc.scale.ray_connect.RayConnectError` within ``timeout`` seconds, before any image
is sent. Token auth: the cluster's token must be in ``RAY_AUTH_TOKEN``, the file
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``; token mode is turned on when the cluster asks
for it (``RAY_AUTH_MODE=disabled`` keeps it off).

Recovery: when an actor dies (its process, or its whole node), the chunks it held go back to the
shared queue, or their images are given up, by the retry rule of every backend
(:mod:`sedc.scale.recovery`). A replacement actor is started for each dead one (it starts when
the cluster has room, e.g. when the autoscaler adds a node). Each death is reported to
``on_event``.

Install with ``pip install 'sedc[ray]'``. Everything an actor receives must be picklable and
importable on the cluster's nodes: the classifier (an ``nn.Module`` or a zero-argument
factory), the images or loaders, and the segmenter. Classes and functions defined in your
driver script are shipped by value; those of your own modules must be installed on the nodes or
shipped with ``ray.init(runtime_env={"py_modules": [...]})`` (or ``"working_dir"``).

Examples
--------
On one machine (starts a local Ray instance for the duration of the call):

>>> import functools, sedc
>>> from sedc.io import load_image
>>> from sedc.models import ModelSpec
>>> from sedc.scale.ray import iter_explain_ray
>>> loaders = [functools.partial(load_image, p, 224) for p in paths]           # doctest: +SKIP
>>> for index, e in iter_explain_ray(loaders, ModelSpec("efficientnet-lite0"),
...                                  mode="blur", on_error="return"):             # doctest: +SKIP
...     print(paths[index], e.removed)

On a cluster: start it (``ray start --head`` on the head node, ``ray start --address=HEAD:6379``
on the others, or a KubeRay / cloud launcher cluster), then either run the driver on a node with
``address="auto"`` or ``"HEAD:6379"``, or connect from outside through Ray Client (port 10001 of
the head node)::

    results = iter_explain_ray(loaders, ModelSpec("efficientnet-lite0"),
                               address="ray://head-node:10001", mode="blur")

Image files must be readable where the actors run (a shared file system or object storage), or
pass arrays instead of loaders. For ``runtime_env`` and other options, call ``ray.init(...)``
yourself first: a Ray session that is already initialised is used as it is and left running.
Ray's own driver messages (a dead node's log dump, for instance) are printed by Ray to
``sys.stdout``; the ``sedc`` command line sends them to ``DIR/ray.log`` instead.
"""
from __future__ import annotations

import copy
import logging
import math
import warnings
from typing import Any, Callable, Iterable, Iterator

from ..base.errors import (
    ImageError,
    InputError,
    InputTypeError,
    MissingDependencyError,
    RayClusterError,
    RayConnectError,
)
from ..base.options import ExplainOptions
from ..base.outputs import warn_training_mode
from ..core.result import Explanation
from ..models.builtin import DEFAULT_MODEL
from ..models.spec import ModelSpec
from .ray_connect import DEFAULT_TIMEOUT, connect
from .ray_pool import IN_FLIGHT, ActorPool, RayEvent, log_event
from .recovery import Chunk, check_on_error
from .task import as_tasks

INSTALL_HINT = "sedc.scale.ray needs Ray: pip install 'sedc[ray]'"

__all__ = ["BuiltinModel", "RayClusterError", "RayConnectError", "RayEvent", "explain_many_ray", "iter_explain_ray"]


def import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError(f"{INSTALL_HINT} ({err})") from err
    return ray


class BuiltinModel(ModelSpec):
    """Deprecated alias of :class:`sedc.models.ModelSpec` for a built-in model; removed in the
    next release. ``BuiltinModel("efficientnet-lite0")`` is ``ModelSpec("efficientnet-lite0")``."""

    def __init__(self, name: str = DEFAULT_MODEL) -> None:
        warnings.warn("sedc.scale.ray.BuiltinModel is deprecated and will be removed in the next "
                      "release; use sedc.models.ModelSpec(name)", DeprecationWarning, stacklevel=2)
        super().__init__(name)


def iter_explain_ray(
    images: Iterable[Any],
    classifier: Any,
    segments: Any = None,
    *,
    address: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    segmenter: Callable[[Any], Any] | None = None,
    on_error: str = "raise",
    on_event: Callable[[RayEvent], None] | None = None,
    chunk_size: int = 4,
    window: int | None = None,
    options: ExplainOptions | None = None,
    **explain_options: Any,
) -> Iterator[tuple[int, Explanation | ImageError]]:
    """Explain many images on Ray actors, yielding ``(index, Explanation)`` as chunks finish.

    Parameters
    ----------
    images : iterable
        Images (anything :func:`sedc.explain` accepts) or picklable zero-argument loaders
        (``functools.partial(sedc.io.load_image, path, 224)``); read lazily, a few chunks ahead.
    classifier : torch.nn.Module or callable
        A picklable ``nn.Module`` (sent as a CPU copy) or a picklable zero-argument factory
        returning one, such as :class:`sedc.models.ModelSpec` or ``functools.partial(build, ...)``.
    segments : array, or sequence of arrays, optional
        One label map for all images, one per image, or None (``segmenter`` or quickshift).
    address : str, optional
        ``"local"`` (a new local instance), ``"auto"``, ``"HOST:PORT"`` or
        ``"ray://HOST:PORT"``; None connects to ``RAY_ADDRESS`` when set, else starts a local
        instance. Ignored when Ray is already initialised. A connection opened here is closed
        when the iteration ends.
    timeout : float
        Seconds to connect to a cluster; past them, or as soon as the cause is known,
        :class:`~sedc.scale.ray_connect.RayConnectError` names the address and the cause
        (``refused``, ``timeout``, ``auth``, ...).
    num_actors : int, optional
        Actors (model copies). Default: one per GPU, or without GPUs ``min(4, cluster CPUs)``.
    num_gpus_per_actor : float, optional
        GPUs reserved by each actor (device ``cuda``); fractions share a GPU. Default: 1 when
        the cluster has GPUs, else 0 (CPU actors, each with ``cluster CPUs // num_actors``
        threads).
    segmenter : callable, optional
        Picklable ``segmenter(image) -> labels`` for images without given segments.
    on_error : {"raise", "return"}
        ``"return"`` yields ``(index, ImageError)`` for a failed image and goes on; ``"raise"``
        raises the first :class:`sedc.ImageError`.
    on_event : callable, optional
        Called with a :class:`RayEvent` for each actor that dies mid-run (default: a warning on
        the ``sedc.scale.ray_pool`` logger).
    chunk_size : int
        Most images per actor call (explained together, with cross-image batching). With a
        sized input, chunks shrink so that every actor gets work.
    window : int, optional
        Searches an actor runs at once (see :class:`sedc.scale.runner.Runner`).
    options : ExplainOptions, optional
        The search settings; ``**explain_options`` override single ones.
    **explain_options
        Any :class:`sedc.ExplainOptions` field (``mode``, ``target``, ``batch_size``, ...),
        as for :func:`sedc.explain` (limits are per image).

    Yields
    ------
    (int, Explanation or ImageError)

    Raises
    ------
    RayConnectError
        Before the first result, when the cluster cannot be joined.
    RayClusterError
        When no actor runs and none could start for ``NO_ACTOR_LIMIT`` seconds (the cluster
        lost its nodes, or never had the resources an actor asks for).
    """
    check_on_error(on_error)
    options = ExplainOptions.build(options, **explain_options)
    _check_sizes(chunk_size, num_actors, num_gpus_per_actor)
    if not callable(classifier):
        raise InputTypeError(f"classifier must be an nn.Module or a picklable factory; got {type(classifier).__name__}")
    warn_training_mode(classifier, stacklevel=3)  # each actor evaluates its own copy in eval mode
    ray = import_ray()

    started = False
    if not ray.is_initialized():
        connect(ray, address, timeout, log_to_driver=False, logging_level=logging.WARNING)
        started = True
    try:
        pool = ActorPool(ray, _cpu_copy(classifier), segmenter, (options, window), num_actors, num_gpus_per_actor,
                         on_event or log_event)
        try:
            size = _fair_chunk_size(images, chunk_size, pool.n)
            yield from pool.run(_chunks(images, segments, size), chunk_size, on_error)
        finally:
            pool.close()
    finally:
        if started:
            ray.shutdown()


def explain_many_ray(images: Iterable[Any], classifier: Any, segments: Any = None, **options: Any) -> list:
    """Explain every image on Ray (see :func:`iter_explain_ray`); results in input order."""
    results = dict(iter_explain_ray(images, classifier, segments, **options))
    return [results[i] for i in range(len(results))]


def _check_sizes(chunk_size: Any, num_actors: Any, num_gpus_per_actor: Any) -> None:
    """Usage errors for the sizes, raised before anything starts."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    if num_actors is not None and (isinstance(num_actors, bool) or not isinstance(num_actors, int)
                                   or num_actors < 1):
        raise InputError(f"num_actors must be a positive integer; got {num_actors!r}")
    if num_gpus_per_actor is not None and not num_gpus_per_actor >= 0:
        raise InputError(f"num_gpus_per_actor must be >= 0; got {num_gpus_per_actor!r}")


def _cpu_copy(classifier: Any) -> Any:
    """A module with parameters off the CPU is sent as a CPU copy (nodes may lack its device)."""
    import torch

    if isinstance(classifier, torch.nn.Module):
        tensors = list(classifier.parameters()) + list(classifier.buffers())
        if any(t.device.type != "cpu" for t in tensors):
            return copy.deepcopy(classifier).cpu()
    return classifier


def _fair_chunk_size(images: Iterable[Any], chunk_size: int, actors: int) -> int:
    """``chunk_size``, or less when a sized input would otherwise leave actors without work."""
    try:
        n = len(images)  # type: ignore[arg-type]
    except TypeError:
        return chunk_size
    return max(1, min(chunk_size, math.ceil(n / (actors * IN_FLIGHT))))


def _chunks(images: Iterable[Any], segments: Any, size: int) -> Iterator[Chunk]:
    chunk = []
    for index, task in enumerate(as_tasks(images, segments)):
        chunk.append((index, task))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


