"""The unit of work of the worker-process and Ray backends: one chunk of images on one device.

Every backend explains a chunk the same way (:func:`run_chunk`, a :class:`~sedc.scale.runner.Runner`
with ``on_error="return"``) and sends each result back as plain data (:func:`pack`), which the
parent turns back into an :class:`~sedc.result.Explanation` or :class:`~sedc.result.ImageError`
(:func:`unpack`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..base.errors import ImageError, InputTypeError
from ..base.options import ExplainOptions
from ..base.outputs import in_training_mode, warn_training_mode
from ..core.result import Explanation
from .runner import Runner

Triple = tuple[int, Any, Any]  # (index in the input, image or loader, segments or None)


def build_model(classifier: Any, device: torch.device) -> Any:
    """A worker's own model: a module moved to ``device``, or a factory's module, in eval mode.

    A factory's model that arrives in training mode gets the training-mode warning here (a
    module's was given in the parent, before it was sent); see :func:`build_model_checked`.
    """
    model, factory_training = build_model_checked(classifier, device)
    if factory_training:
        warn_training_mode()
    return model


def build_model_checked(classifier: Any, device: torch.device) -> tuple[Any, bool]:
    """``(model, whether a factory built it in training mode)``; the model is put in eval mode.

    The worker's copy is its own, so switching it to eval mode for good changes nothing the user
    holds: it is what :func:`sedc.explain` does for the duration of a call.
    """
    if isinstance(classifier, torch.nn.Module):
        return classifier.to(device).eval(), False
    if callable(classifier):
        model = classifier()
        if isinstance(model, torch.nn.Module):
            training = in_training_mode(model)
            return model.to(device).eval(), training
        return model, False
    raise InputTypeError(f"classifier for worker processes must be an nn.Module or a picklable factory; "
                    f"got {type(classifier).__name__}")


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


def run_chunk(model: Any, device: Any, chunk: Sequence[Triple], segmenter: Callable | None,
              options: ExplainOptions, window: int | None = None) -> Iterator[tuple[int, tuple[str, Any]]]:
    """Explain ``chunk`` on one device; yield ``(index, packed result)`` as images finish."""
    runner = Runner(model, device, options, window=window)
    items = [item for _, item, _ in chunk]
    segments = [seg for _, _, seg in chunk]
    for position, result in runner.run(items, segments, segmenter, on_error="return"):
        yield chunk[position][0], pack(result)
