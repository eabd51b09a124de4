"""sedc: fast, exact SEDC / SEDC-T counterfactual explanations for PyTorch image classifiers.

>>> import sedc
>>> model = sedc.models.load()                                    # doctest: +SKIP
>>> e = sedc.explain(photo, model.module)                         # doctest: +SKIP
>>> print(model.class_names[e.original_class], "->", model.class_names[e.new_class], e.removed)  # doctest: +SKIP
>>> sedc.explain(photo, model)           # in Jupyter: the figure, with the model's class names  # doctest: +SKIP
"""

from importlib import import_module
from typing import Any

from .base.errors import ImageError, InputError, InputTypeError, SedcError
from .base.options import MODES, ExplainOptions
from .core.explain import explain
from .core.result import Explanation
from .core.seed import (
    create_explanation_mask,
    create_perturbation_mask,
    create_perturbed_image,
    sedc_pytorch,
    sedc_pytorch_batch,
)

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "ExplainOptions",
    "Explanation",
    "Gallery",
    "ImageError",
    "InputError",
    "InputTypeError",
    "SedcError",
    "accelerate",
    "create_explanation_mask",
    "errors",
    "create_perturbation_mask",
    "create_perturbed_image",
    "explain",
    "explain_many",
    "iter_explain",
    "models",
    "plot",
    "reference",
    "sedc_pytorch",
    "sedc_pytorch_batch",
    "segment",
]

_LAZY = {
    "accelerate": ("sedc.models.runtime", "accelerate"),
    "segment": ("sedc.imaging.segmentation", "segment"),
    "plot": ("sedc.display.figure", "plot"),
    "Gallery": ("sedc.display.notebook", "Gallery"),
    "explain_many": ("sedc.scale.many", "explain_many"),
    "iter_explain": ("sedc.scale.many", "iter_explain"),
    "models": ("sedc.models", None),
    "reference": ("sedc.reference", None),
    "errors": ("sedc.base.errors", None),
    "io": ("sedc.imaging.io", None),
}


def __getattr__(name: str) -> Any:
    """Import the heavier submodules (matplotlib, scikit-image, model packages) on first use."""
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'sedc' has no attribute {name!r}")
