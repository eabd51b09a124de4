"""The unit of work of the worker-process and Ray backends: one chunk of images on one device.

Every backend explains a chunk the same way (:func:`run_chunk`, a :class:`~sedc.scale.runner.Runner`
with ``on_error="return"``) and sends each result back as plain data (:func:`pack`), which the
parent turns back into an :class:`~sedc.result.Explanation` or :class:`~sedc.result.ImageError`
(:func:`unpack`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..base.errors import ImageError, InputTypeError
from ..base.options import ExplainOptions
from ..base.outputs import warn_training_mode
from ..core.result import Explanation
from .runner import Runner
from .task import IndexedTask


def worker_model(classifier: Any, device: torch.device) -> tuple[Any, list[str]]:
    """A worker's own model on ``device`` in eval mode, and the warnings to relay to the parent.

    What a worker process or Ray actor receives is a module (a copy of the user's, already
    checked for training mode in the parent) or a zero-argument factory, called here. A
    factory's model in a training mode that matters gets the training-mode warning, caught here
    and returned as text: the parent issues it, once per run (:func:`relay_warnings`). The copy
    is the worker's own, so switching it to eval mode for good changes nothing the user holds.

    Raises
    ------
    InputTypeError
        When ``classifier`` is neither a module nor callable.
    """
    if isinstance(classifier, torch.nn.Module):
        return classifier.to(device).eval(), []
    if not callable(classifier):
        raise InputTypeError(f"classifier for worker processes must be an nn.Module or a picklable "
                             f"factory; got {type(classifier).__name__}")
    model = classifier()
    if not isinstance(model, torch.nn.Module):
        return model, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_training_mode(model)
    return model.to(device).eval(), [str(w.message) for w in caught]


def relay_warnings(texts: Iterable[str], seen: set[str], stacklevel: int = 2) -> None:
    """Issue the warnings a worker sent back, in the parent, each text once per run (``seen``)."""
    for text in texts:
        if text not in seen:
            seen.add(text)
            warnings.warn(text, UserWarning, stacklevel=stacklevel + 1)


def pack(result: Explanation | ImageError) -> tuple[str, Any]:
    """Make a result safe to send between processes (tensors become numpy arrays)."""
    if isinstance(result, Explanation):
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        for name in ("perturbed_image", "image"):
            fields[name] = fields[name].numpy()
        return ("explanation", fields)
    return ("error", result.message)


def unpack(index: int, packed: tuple[str, Any]) -> Explanation | ImageError:
    """Inverse of :func:`pack`.

    Arrays that arrive read-only (Ray hands out zero-copy views of its object store) are copied,
    so results can be modified like those of :func:`sedc.explain`.
    """
    kind, payload = packed
    if kind == "explanation":
        payload = {name: np.array(value) if isinstance(value, np.ndarray) and not value.flags.writeable
                   else value for name, value in payload.items()}
        for name in ("perturbed_image", "image"):
            payload[name] = torch.from_numpy(np.asarray(payload[name]))
        return Explanation(**payload)
    return ImageError(index, payload)


def run_chunk(model: Any, device: Any, chunk: Sequence[IndexedTask], segmenter: Callable | None,
              options: ExplainOptions, window: int | None = None) -> Iterator[tuple[int, tuple[str, Any]]]:
    """Explain ``chunk`` on one device; yield ``(index, packed result)`` as images finish."""
    runner = Runner(model, device, options, window=window)
    for position, result in runner.run([task for _, task in chunk], segmenter, on_error="return"):
        yield chunk[position][0], pack(result)
