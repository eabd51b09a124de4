"""What happens to an image that fails, on every many-image backend: one policy, one rule.

- **The error policy** (:func:`failed`): with ``on_error="raise"`` a failed image raises
  :class:`sedc.ImageError` (the original exception, where there is one in this process, is its
  ``__cause__``); with ``on_error="return"`` the error is yielded in the image's place and the
  other images go on.
- **The retry rule** (:class:`Recovery`), for the images of a worker that died: a worker process
  (:mod:`sedc.scale.workers`) or a Ray actor, or its whole node (:mod:`sedc.scale.ray`). A
  worker holds a few chunks of images and runs them in order.

  1. The chunk it was running counts one death for each of its images that had not come back:
     for a worker process its oldest chunk with images not yet returned, for a Ray actor its
     oldest call that had not finished. The chunks queued behind it had not started: their
     images count none.
  2. An image is given up when its worker dies while running it alone (a chunk of that one
     image) and it had died before: ``ImageError(kind="worker-died")``, "worker process on cpu
     died twice on this image, the last time with it alone (exit code -9)" or "Ray actor on
     NODE died 3 times on this image, ..." (its deaths counted). It is then known for sure to
     be the culprit.
  3. Every other image goes back to the queue, ahead of the images not yet started. An image
     with two deaths or more goes back alone, and runs on a worker that holds nothing else and
     takes nothing else while it runs it: if that worker dies, no other image goes down with
     it, and it is the one that killed it. The others are chunked again, small enough to spread
     over every surviving worker: images that merely shared a chunk with a culprit are not run
     alone.

  Each image comes back exactly once, explained or given up; a replacement worker is started for
  each dead one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..base.errors import ImageError, InputError
from .task import IndexedTask

ON_ERROR = ("raise", "return")

Chunk = list[IndexedTask]  # the tasks a worker runs together


def check_on_error(on_error: Any) -> str:
    """Validate ``on_error``: ``"raise"`` or ``"return"``."""
    if on_error not in ON_ERROR:
        raise InputError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
    return on_error


def failed(error: ImageError, on_error: str) -> tuple[int, ImageError]:
    """Apply the error policy: raise ``error`` (``"raise"``) or return ``(index, error)``."""
    if on_error == "raise":
        if error.error is not None:
            raise error from error.error
        raise error
    return error.index, error


@dataclass(frozen=True)
class Lost:
    """What became of the images of a dead worker: given up, and how many went back to the queue."""

    given_up: list[IndexedTask]
    requeued: int


class Recovery:
    """The retry rule (see the module): deaths per image and the queue of images to run again.

    Parameters
    ----------
    chunk_size : int
        The most images per chunk put back in the queue.
    in_flight : int
        Chunks a worker holds at a time (to size the chunks put back).
    """

    def __init__(self, chunk_size: int, in_flight: int) -> None:
        self.chunk_size, self.in_flight = chunk_size, in_flight
        self.deaths: dict[int, int] = {}
        self.queue: deque[Chunk] = deque()

    @property
    def pending(self) -> bool:
        """Whether images wait in the queue."""
        return bool(self.queue)

    def alone(self, chunk: Sequence[IndexedTask]) -> bool:
        """Whether ``chunk`` is the retry of one image that died twice (it runs alone)."""
        return len(chunk) == 1 and self.deaths.get(chunk[0][0], 0) >= 2

    def next_chunk(self, held: Sequence[Sequence[IndexedTask]], fresh: Callable[[], Chunk | None]
                   ) -> Chunk | None:
        """The next chunk for a worker holding ``held`` chunks: from the queue, else ``fresh()``.

        None when the worker may take nothing now: it runs an image alone, or the queue's next
        chunk must run alone and the worker holds something (or ``fresh()`` has nothing left).
        """
        if any(self.alone(chunk) for chunk in held):
            return None
        if self.queue:
            if held and self.alone(self.queue[0]):
                return None
            return self.queue.popleft()
        return fresh()

    def died(self, running: Sequence[IndexedTask], queued: Sequence[IndexedTask], survivors: int,
             alone: bool | None = None) -> Lost:
        """Record a worker's death and put its images back in the queue, but those given up.

        Parameters
        ----------
        running : sequence of tasks
            The images of the chunk it was running that had not come back.
        queued : sequence of tasks
            The images of the chunks queued behind it (they count no death).
        survivors : int
            Workers left to share the images put back.
        alone : bool, optional
            Whether the running chunk was one image (default: ``len(running) == 1``).
        """
        alone = len(running) == 1 if alone is None else alone
        given_up, again = [], []
        for task in running:
            self.deaths[task[0]] = self.deaths.get(task[0], 0) + 1
            (given_up if alone and self.deaths[task[0]] >= 2 else again).append(task)
        again += queued
        self._requeue(again, max(1, survivors))
        return Lost(given_up, len(again))

    def _requeue(self, tasks: list[IndexedTask], survivors: int) -> None:
        """Images with two deaths one per chunk, first; the others chunked to spread over the
        survivors, after the chunks already waiting."""
        solo = [t for t in tasks if self.deaths.get(t[0], 0) >= 2]
        shared = [t for t in tasks if self.deaths.get(t[0], 0) < 2]
        self.queue.extendleft([t] for t in reversed(solo))
        size = max(1, min(self.chunk_size, math.ceil(len(shared) / (survivors * self.in_flight))))
        self.queue.extend(shared[i:i + size] for i in range(0, len(shared), size))

    def given_up(self, index: int, worker: str, detail: str) -> ImageError:
        """The error of an image given up: ``"{worker} died twice on this image, ... ({detail})"``."""
        deaths = self.deaths.get(index, 0)
        times = "twice" if deaths == 2 else f"{deaths} times"
        return ImageError(index, f"{worker} died {times} on this image, the last time with it alone "
                                 f"({detail})", kind="worker-died")
