"""The import line of the original request: ``from sedc_pytorch import sedc_pytorch, sedc_pytorch_batch``.

The seed API's five functions, re-exported from :mod:`sedc` (see :mod:`sedc.core.seed`).
"""

from sedc import (
    create_explanation_mask,
    create_perturbation_mask,
    create_perturbed_image,
    sedc_pytorch,
    sedc_pytorch_batch,
)

__all__ = [
    "create_explanation_mask",
    "create_perturbation_mask",
    "create_perturbed_image",
    "sedc_pytorch",
    "sedc_pytorch_batch",
]
