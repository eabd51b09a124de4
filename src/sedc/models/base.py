"""What every loader returns: :class:`LoadedModel`, and :class:`Normalized`, the [0, 1] wrapper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..base.deprecated import renamed_attribute
from ..base.errors import InputError, InputTypeError
from ..base.outputs import to_scores
from .preprocessing import Preprocessing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    """A classifier ready for SEDC.

    Attributes
    ----------
    module : torch.nn.Module
        Module in eval mode mapping float RGB batches (B, 3, H, W) in [0, 1] to scores (B, K):
        softmax probabilities unless the model was loaded with ``softmax=False``. The model's
        normalisation is built in.
    class_names : list of str
        ``class_names[k]`` names output column ``k``. (``labels``, its name before 0.2, still
        works, with a ``DeprecationWarning``.)
    input_size : int, (height, width) or None
        The side of the square images the model sees (224), their (height, width) when not
        square, or None when it follows each photo's aspect ratio.
    name : str
        The built-in model name, or the spec the model was loaded from.
    preprocessing : Preprocessing or None
        How photos become the images the model sees (resize, centre crop; see :meth:`prepare`).
        None means a plain resize to ``input_size`` (bicubic).
    """

    module: nn.Module
    class_names: list[str]
    input_size: int | tuple[int, int] | None
    name: str
    preprocessing: Preprocessing | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes K (the length of ``class_names``)."""
        return len(self.class_names)

    @property
    def labels(self) -> list[str]:
        """Deprecated name of :attr:`class_names`."""
        renamed_attribute("LoadedModel", "labels", "class_names")
        return self.class_names

    @property
    def geometry(self) -> Preprocessing:
        """The resize-and-crop step (:attr:`preprocessing`, or a plain resize to ``input_size``)."""
        if self.preprocessing is not None:
            return self.preprocessing
        size = self.input_size
        pair = (size, size) if isinstance(size, int) else size
        return Preprocessing(resize=tuple(pair) if pair else None, interpolation="bicubic")

    def prepare(self, image: Any) -> np.ndarray:
        """The image this model sees: resized and centre-cropped as the model's own pipeline does.

        Explain the returned image (``sedc.explain(model.prepare(photo), model.module)``): the
        search then runs on exactly what the model sees, and the figures show it.

        Parameters
        ----------
        image : PIL.Image.Image, numpy.ndarray or torch.Tensor
            A photo of any size: PIL image, (H, W, 3) array (uint8 or float in [0, 1]) or
            (3, H, W) tensor.

        Returns
        -------
        numpy.ndarray
            float32 (H, W, 3) in [0, 1].
        """
        return self.geometry.prepare(image)


class Normalized(nn.Module):
    """Wrap a classifier so it takes [0, 1] images and (optionally) returns probabilities.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier mapping normalised (B, C, H, W) batches to (B, K) logits, returned as anything
        :func:`~sedc.models.to_scores` accepts (a tensor, ``.logits``, a mapping, a tuple).
    mean, std : sequence of float or None
        Per-channel normalisation ``(x - mean) / std`` applied before ``model``; both None to
        pass the input through unchanged.
    softmax : bool, default True
        Apply a softmax over the class dimension to the model output.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, softmax: bool = True) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise InputTypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        mean_t, std_t = _normalization_tensors(mean, std)
        self.model = model
        self.softmax = bool(softmax)
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x``, run the model and apply the softmax when enabled."""
        if self.mean is not None:
            x = (x - self.mean) / self.std
        out = to_scores(self.model(x))
        return torch.softmax(out, dim=1) if self.softmax else out


def _normalization_tensors(mean: Sequence[float] | None, std: Sequence[float] | None
                           ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise InputError("mean and std must be given together (or both None for no normalisation)")
    mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
    if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
        raise InputError(f"mean and std must have one value per channel and the same length; "
                         f"got {mean_t.numel()} and {std_t.numel()} values")
    if not torch.all(std_t > 0):
        raise InputError(f"std values must all be positive; got {std_t.tolist()}")
    return mean_t.view(1, -1, 1, 1), std_t.view(1, -1, 1, 1)

