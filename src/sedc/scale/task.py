"""Per-image search settings: :class:`Task` wraps one image with settings of its own.

:func:`sedc.scale.iter_explain` applies one :class:`~sedc.ExplainOptions` to every image. Some
runs need an image's mode or target to differ, e.g. each image of a labelled data set explained
toward its own true class, or each image explained in several modes. Such an image is passed as
a ``Task``: every backend (one process, worker processes, Ray) hands it unchanged to the runner,
which applies its settings over the run's options for that image alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..base.errors import InputTypeError
from ..base.options import ExplainOptions

# The settings of one image's search. The others (batch_size, autocast, channels_last, max_batch)
# shape the shared model batches, so they stay per run.
TASK_OPTIONS = ("mode", "target", "seed", "max_time", "max_evals", "prune")


@dataclass(frozen=True, eq=False)
class Task:
    """One image (or zero-argument loader) with search settings of its own.

    Parameters
    ----------
    image : Any
        What :func:`sedc.scale.iter_explain` accepts as one image: an image or a loader.
    options : mapping, optional
        Settings that replace the run's for this image: any of ``mode``, ``target``, ``seed``,
        ``max_time``, ``max_evals``, ``prune`` (validated here, when the task is made).
    untargeted_if_predicted : bool
        When the model already predicts the target class, run plain SEDC (the result's
        ``target`` is None) instead of failing the image: "explain toward the true class,
        unless the model already says it".

    Raises
    ------
    TypeError, ValueError
        For a setting that may not vary per image, or an invalid value.
    """

    image: Any
    options: Mapping[str, Any] = field(default_factory=dict)
    untargeted_if_predicted: bool = False

    def __post_init__(self) -> None:
        settings = dict(self.options)
        unknown = sorted(set(settings) - set(TASK_OPTIONS))
        if unknown:
            raise InputTypeError(f"a Task sets only {', '.join(TASK_OPTIONS)}; got {', '.join(unknown)} "
                            "(the other options apply to the whole run)")
        ExplainOptions(**settings)  # validate the values now, in the caller's process
        object.__setattr__(self, "options", settings)

    def apply(self, options: ExplainOptions) -> ExplainOptions:
        """The run's ``options`` with this task's settings put over them."""
        return dataclasses.replace(options, **self.options) if self.options else options


def unwrap(item: Any, options: ExplainOptions) -> tuple[Any, ExplainOptions, bool]:
    """``(image or loader, options, untargeted_if_predicted)`` of an input item (a Task or not)."""
    if isinstance(item, Task):
        return item.image, item.apply(options), item.untargeted_if_predicted
    return item, options, False
