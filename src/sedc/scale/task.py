"""Per-image search settings: :class:`Task` wraps one image with settings of its own.

:func:`sedc.scale.iter_explain` applies one :class:`~sedc.ExplainOptions` to every image. Some
runs need an image's mode or target to differ, e.g. each image of a labelled data set explained
toward its own true class, or each image explained in several modes. Such an image is passed as
a ``Task``: every backend (one process, worker processes, Ray) hands it unchanged to the runner,
which applies its settings over the run's options for that image alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from ..base.errors import InputTypeError
from ..base.options import ExplainOptions, check_fields


@dataclass(frozen=True, eq=False)
class Task:
    """One image (or zero-argument loader) with search settings of its own.

    Parameters
    ----------
    image : Any
        What :func:`sedc.scale.iter_explain` accepts as one image: an image or a loader.
    options : mapping, optional
        Settings that replace the run's for this image: any of
        ``ExplainOptions.per_image_names()`` (``mode``, ``target``, ``max_time``, ``max_evals``,
        ``seed``, ``prune``), checked here, once, when the task is made.
    untargeted_if_predicted : bool
        When the model already predicts the target class, run plain SEDC (the result's
        ``target`` is None) instead of failing the image: "explain toward the true class,
        unless the model already says it".
    segmentation : array, optional
        The image's segmentation; None: the run's (given, or made by its segmenter).

    Raises
    ------
    InputTypeError, InputError
        For a setting that may not vary per image, or an invalid value.
    """

    image: Any
    options: Mapping[str, Any] = field(default_factory=dict)
    untargeted_if_predicted: bool = False
    segmentation: Any = None

    def __post_init__(self) -> None:
        settings = dict(self.options)
        allowed = ExplainOptions.per_image_names()
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise InputTypeError(f"a Task sets only {', '.join(allowed)}; got {', '.join(unknown)} "
                                 "(the other options apply to the whole run)")
        object.__setattr__(self, "options", check_fields(settings))

    def apply(self, options: ExplainOptions) -> ExplainOptions:
        """The run's ``options`` with this task's (already checked) settings put over them."""
        return options.with_checked(self.options)


IndexedTask = tuple[int, Task]  # a task and its position in the run's input


def as_tasks(images: Iterable[Any], segmentation: Any = None) -> Iterator[Task]:
    """Every input as a :class:`Task` holding its segmentation (the one way into every backend).

    ``segmentation`` is one label map for all images, a list or tuple with one per image, or
    None; a task's own segmentation wins.
    """
    for index, item in enumerate(images):
        given = segmentation[index] if isinstance(segmentation, (list, tuple)) else segmentation
        if not isinstance(item, Task):
            yield Task(item, segmentation=given)
        elif item.segmentation is None and given is not None:
            task = copy.copy(item)  # already checked: not through __post_init__ again
            object.__setattr__(task, "segmentation", given)
            yield task
        else:
            yield item


