"""The base layer: what every other layer shares, importing nothing of sedc above it.

:mod:`~sedc.base.options` (:class:`ExplainOptions`, validated once at the public boundary),
:mod:`~sedc.base.validate` (images, segmentations, devices, classifiers),
:mod:`~sedc.base.outputs` (the output rule and the training-mode rule),
:mod:`~sedc.core.result` (:class:`Explanation`), :mod:`~sedc.base.errors` (the one error family).
"""
