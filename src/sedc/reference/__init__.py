"""The oracle: the original SEDC / SEDC-T code, one image and one model call per candidate.

Not part of the fast path: the benchmark's baseline and the tests' oracle
(:mod:`~sedc.reference.original`). Use it as ``sedc.reference.sedc(image, predictor, segments,
mode)`` with a :class:`TorchPredictor` around a torch model.
"""

from .original import ReferenceResult, TorchPredictor, fill_image, perturbed_image, sedc, sedc_t

__all__ = ["ReferenceResult", "TorchPredictor", "fill_image", "perturbed_image", "sedc", "sedc_t"]
