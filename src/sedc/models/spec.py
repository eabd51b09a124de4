"""One model, named once: :class:`ModelSpec` loads it here and builds it in workers and actors.

A spec is plain data (the model's name or spec and its options), so it pickles: the command line
loads the model from it in its own process (:meth:`ModelSpec.load`, where the warnings and notes
are said once) and hands the same spec to worker processes and Ray actors as the classifier
factory, which each calls to build its own copy (:meth:`ModelSpec.__call__`, on the CPU, quiet).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..base.errors import InputError
from .base import LoadedModel
from .builtin import DEFAULT_MODEL, available, load
from .user import load_user_model


@dataclass(frozen=True)
class ModelSpec:
    """A built-in or user model, by name: a picklable loader and zero-argument factory.

    Parameters
    ----------
    spec : str, pathlib.Path or None
        A built-in model name (None: :data:`~sedc.models.builtin.DEFAULT_MODEL`) or any spec
        :func:`~sedc.models.load_user_model` accepts (``torchvision:NAME``, ``timm:NAME``,
        ``hf:ORG/NAME``, a model file, ``package.module:factory``).
    input_size : int, (height, width) or None
        Files and factories: the size images are resized to (see
        :func:`~sedc.models.load_user_model`).
    normalize : {"imagenet", "half", "none"} or None
        Files and factories: the normalisation built into the module.
    class_names : str, pathlib.Path or None
        User models: ``"imagenet"`` or a file of class names.

    Examples
    --------
    >>> from sedc.models import ModelSpec
    >>> spec = ModelSpec("efficientnet-lite0")
    >>> loaded = spec.load("cpu")           # doctest: +SKIP
    >>> module = spec()                     # doctest: +SKIP
    """

    spec: str | Path | None = None
    input_size: int | tuple[int, int] | None = None
    normalize: str | None = None
    class_names: str | Path | None = None

    @property
    def is_builtin(self) -> bool:
        """Whether the spec names a built-in model (None: the default one)."""
        return self.spec is None or (isinstance(self.spec, str)
                                     and self.spec.strip().lower() in available())

    @property
    def name(self) -> str:
        """The built-in model's name, or the spec as given."""
        return DEFAULT_MODEL if self.spec is None else str(self.spec)

    def load(self, device: Any = None) -> LoadedModel:
        """The model with its class names and preprocessing, on ``device`` (None: the CPU).

        Raises
        ------
        InputError
            For ``input_size``, ``normalize`` or ``class_names`` given with a built-in model, and
            whatever :func:`~sedc.models.load` or :func:`~sedc.models.load_user_model` raise.
        """
        if not self.is_builtin:
            return load_user_model(self.spec, input_size=self.input_size, normalize=self.normalize,
                                   class_names=self.class_names, device=device)
        given = [name for name in ("input_size", "normalize", "class_names") if getattr(self, name) is not None]
        if given:
            raise InputError(f"{', '.join(given)} only apply to your own models; the built-in "
                             f"{self.name} sets them")
        return load(self.name, device=device)

    def __call__(self) -> nn.Module:
        """The module, built on the CPU without warnings: what a worker process or Ray actor calls.

        The process that made the spec loaded the model first and said its warnings; the copies
        built from it stay quiet (the worker moves its copy to its device).
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.load("cpu").module
