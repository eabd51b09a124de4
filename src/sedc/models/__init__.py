"""Built-in and user-supplied image classifiers, ready for SEDC.

Every loader returns a :class:`LoadedModel` whose ``module`` takes float RGB batches of shape
(B, 3, H, W) with values in [0, 1] and returns class scores of shape (B, K): the input
normalisation and (by default) the softmax are built into the module, so the search can feed it
plain images and read probabilities.

.. warning::
   :func:`load_user_model` executes code: loading a TorchScript file runs the program stored in
   it, and a ``package.module:factory`` spec imports that module and calls the factory. Only load
   files and modules you trust.

The package's parts: :mod:`~sedc.models.outputs` (the one rule for what a classifier returns),
:mod:`~sedc.models.base` (:class:`LoadedModel`, :class:`Normalized`),
:mod:`~sedc.models.builtin`, :mod:`~sedc.models.user` (model specs), :mod:`~sedc.models.spec`
(:class:`ModelSpec`: one model by name, loaded here or built by workers), :mod:`~sedc.models.libraries`
(torchvision, timm, Hugging Face), :mod:`~sedc.models.files` (``.pt``, ``.pt2``, ``.onnx``),
:mod:`~sedc.models.preprocessing` (the model's own resize, crop and normalisation),
:mod:`~sedc.models.labels`, and :mod:`~sedc.models.runtime` with :mod:`~sedc.models.export`
(``accelerate``: ONNX Runtime on the CPU).
"""

from ..base.errors import ExportError, ModelFileNotFoundError, ModelUnavailableError
from ..base.outputs import eval_mode, to_scores
from .base import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, Normalized
from .builtin import DEFAULT_MODEL, available, describe, load
from .labels import imagenet_labels, imagenet_synonyms, read_labels, resolve_class
from .preprocessing import Preprocessing
from .runtime import RUNTIMES, OnnxClassifier, accelerate
from .spec import ModelSpec
from .user import NORMALIZATIONS, is_library_spec, load_user_model

__all__ = [
    "DEFAULT_MODEL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "RUNTIMES",
    "ExportError",
    "LoadedModel",
    "ModelFileNotFoundError",
    "ModelSpec",
    "ModelUnavailableError",
    "Normalized",
    "OnnxClassifier",
    "Preprocessing",
    "accelerate",
    "available",
    "describe",
    "imagenet_labels",
    "eval_mode",
    "imagenet_synonyms",
    "is_library_spec",
    "load",
    "load_user_model",
    "read_labels",
    "resolve_class",
    "to_scores",
]
