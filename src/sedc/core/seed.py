"""The API of the original request (``pytorch_sedc_readme.md``), kept as promised.

``sedc_pytorch`` and ``sedc_pytorch_batch`` return the seed's 5-tuple
``(explanation, segments_in_explanation, perturbation, new_class, predicted_class_index)`` and are
thin layers over :func:`sedc.explain` (one candidate per model call, or ``batch_size`` per call).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..base.errors import InputError
from ..base.options import check_fields
from ..base.validate import as_image_tensor, as_segments, resolve_device
from .explain import explain
from .perturbation import make_fill


def sedc_pytorch(image: Any, classifier: Any, segments: Any, mode: Any = "mean",
                 device: Any = None) -> tuple[np.ndarray, list[int], torch.Tensor, int, int]:
    """SEDC with one candidate per model call, on ``device``.

    Parameters
    ----------
    image : torch.Tensor
        (1, C, H, W) or (C, H, W) image (numpy (H, W, C) and PIL are accepted too).
    classifier : torch.nn.Module or callable
        (B, C, H, W) → (B, K) scores.
    segments : numpy.ndarray
        (H, W) segment labels.
    mode : str
        ``'mean'``, ``'blur'``, ``'random'``, ``'inpaint'`` (or any :func:`sedc.explain` mode).
    device : torch.device, optional
        Target device (defaults to the classifier's).

    Returns
    -------
    explanation : numpy.ndarray
        (H, W, C): the image inside the explanation's segments, zeros elsewhere.
    segments_in_explanation : list of int
    perturbation : torch.Tensor
        (1, C, H, W) image with those segments removed (the unperturbed image if none found).
    new_class, predicted_class_index : int
        ``new_class == predicted_class_index`` when no counterfactual was found.
    """
    # The 5-tuple has no place for checks: none run (one model call per candidate, as the original).
    return explain(image, classifier, segments, mode=mode, device=device, batch_size=1, checks=(),
                   search="exact").as_tuple()


def sedc_pytorch_batch(image: Any, classifier: Any, segments: Any, mode: Any = "mean",
                       device: Any = None, batch_size: int = 8
                       ) -> tuple[np.ndarray, list[int], torch.Tensor, int, int]:
    """As :func:`sedc_pytorch`, evaluating ``batch_size`` candidates per model call."""
    return explain(image, classifier, segments, mode=mode, device=device, batch_size=batch_size,
                   checks=(), search="exact").as_tuple()


def create_perturbation_mask(image: Any, segments: Any, mode: Any = "mean", device: Any = None,
                             seed: int = 0) -> torch.Tensor:
    """The fill image for ``mode``: (1, C, H, W) on ``device`` (see :func:`sedc.core.perturbation.make_fill`)."""
    tensor = as_image_tensor(image)
    dev = resolve_device(device, tensor.device)
    tensor = tensor.to(dev)
    labels = as_segments(segments, tensor.shape[2], tensor.shape[3])
    check_fields({"mode": mode, "seed": seed})
    return make_fill(tensor, torch.from_numpy(labels).to(dev), mode, seed=seed)


def create_perturbed_image(image: Any, perturbation_mask: torch.Tensor, segments: Any,
                           segment_ids: Sequence[int]) -> torch.Tensor:
    """The image with the segments ``segment_ids`` replaced by ``perturbation_mask`` (the fill).

    One tensor operation on the fill's device; returns (1, C, H, W).
    """
    fill = perturbation_mask if perturbation_mask.ndim == 4 else perturbation_mask[None]
    tensor = as_image_tensor(image).to(fill.device)
    if tuple(fill.shape) != tuple(tensor.shape):
        raise InputError(f"the fill has shape {tuple(fill.shape)} but the image is {tuple(tensor.shape)}")
    labels = torch.from_numpy(as_segments(segments, tensor.shape[2], tensor.shape[3])).to(fill.device)
    ids = torch.as_tensor(list(segment_ids), dtype=labels.dtype, device=fill.device)
    pixel_mask = torch.isin(labels, ids)
    return torch.where(pixel_mask, fill, tensor)


def create_explanation_mask(image: Any, segments: Any, segment_ids: Sequence[int]) -> np.ndarray:
    """(H, W, C) array: the image's pixels inside ``segment_ids``, zeros elsewhere."""
    tensor = as_image_tensor(image).cpu()
    labels = as_segments(segments, tensor.shape[2], tensor.shape[3])
    inside = np.isin(labels, np.asarray(list(segment_ids), dtype=labels.dtype))
    return tensor[0].permute(1, 2, 0).numpy() * inside[:, :, None]
