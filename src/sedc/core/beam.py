"""Beam search for SEDC / SEDC-T counterfactuals: the exact search's rules, a bounded frontier.

The algorithm (width ``W`` >= 1; ``W = 1`` is the greedy search):

1. Depth 1 evaluates every single segment {j}, in ascending label order: the same step as the
   exact search (:class:`~sedc.core.search.Search`).
2. At the end of a depth, if it produced at least one counterfactual, the search stops
   (``"found"``) and the answer is chosen among that depth's counterfactuals by the exact search's
   rule (:meth:`Search.choose`: SEDC the lowest original-class score, SEDC-T the highest target
   score; the first evaluated on ties).
3. Otherwise the *beam* is the ``W`` sets of that depth with the highest priority (SEDC:
   ``p - score_c``; SEDC-T: ``score_t - score_c``); on equal priorities the one evaluated first.
   The next depth is one step: the children ``S ∪ {j}`` of every beam set, beam order (best
   first), each parent's children in ascending label order, skipping sets already evaluated in
   this step (a child reached from two beam sets is evaluated once).
4. A depth with no children (the beam held the full set) ends the search (``"exhausted"``).

With ``W`` at least the number of sets of any depth, every set of size d is evaluated before any
of size d + 1, so the answer has the smallest size of any counterfactual (breadth-first search).
A depth costs at most ``W * (N - d)`` evaluations and one round of model calls, against ``N - d``
per expanded set for the exact search. Limits (``stop``) and batching (``take``/``feed``) behave
exactly as in :class:`~sedc.core.search.Search`; :class:`~sedc.core.search.Pruner` works on top
(every set the beam evaluated before the last depth is smaller and not a counterfactual).
"""

from __future__ import annotations

import heapq

from ..base.errors import InputError
from .search import Search


class Beam(Search):
    """SEDC / SEDC-T beam search of width ``width`` over ``n_segments`` segments.

    Parameters
    ----------
    n_segments, original_class, original_score, target
        As for :class:`~sedc.core.search.Search`.
    width : int
        Sets kept per depth (``W``); 1 is greedy.
    """

    def __init__(self, n_segments: int, original_class: int, original_score: float,
                 target: int | None = None, width: int = 1) -> None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InputError(f"the beam width must be an int >= 1; got {width!r}")
        self.width = width
        super().__init__(n_segments, original_class, original_score, target)

    def _finish_step(self) -> None:
        if self._step_found:
            self.best = self.choose(self._step_found)
            self.done, self.stop_reason = True, "found"
            return
        # The frontier holds exactly this depth's sets, keyed (-priority, evaluation order).
        beam = [heapq.heappop(self._frontier)[2] for _ in range(min(self.width, len(self._frontier)))]
        self._frontier = []
        children = []
        for parent in beam:
            for j in range(self.n_segments):
                bit = 1 << j
                if not parent & bit and self.claim(parent | bit):
                    children.append(parent | bit)
        self._step, self._cursor, self._received, self._step_found = children, 0, 0, []
        if not children:
            self.done, self.stop_reason = True, "exhausted"
