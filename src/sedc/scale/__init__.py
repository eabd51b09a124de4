"""Many images: searches sharing model batches, worker processes per device, and Ray.

:mod:`~sedc.scale.many` picks the backend; :mod:`~sedc.scale.runner` runs searches in one
process; :mod:`~sedc.scale.chunk` is the unit of work every backend shares;
:mod:`~sedc.scale.workers` and :mod:`~sedc.scale.ray` spread chunks over processes and clusters;
:class:`~sedc.scale.task.Task` gives one image settings of its own (mode, target, ...).
"""

from .many import explain_many, iter_explain
from .task import Task

__all__ = ["Task", "explain_many", "iter_explain"]
