"""The search strategies by name, and the protocol every one of them follows.

============  ==========================================  ===========================================
name          module                                      what it returns
============  ==========================================  ===========================================
``"exact"``   :mod:`sedc.core.search` (:class:`Search`)   the original SEDC / SEDC-T answer (default)
``"fast"``    :mod:`sedc.core.fast` (:class:`Fast`)       an irreducible counterfactual from the
                                                          segment ranking; the exact search as a
                                                          fallback
``"beam"``    :mod:`sedc.core.beam` (:class:`Beam`)       best-first with ``width`` sets per depth
============  ==========================================  ===========================================

A driver (:class:`sedc.core.engine.Job`, a test, a benchmark) treats them alike through
:class:`Strategy`; :class:`~sedc.core.search.Pruner` works on top of any of them.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from ..base.errors import InputError
from ..base.options import DEFAULT_BEAM_WIDTH, SEARCHES
from .beam import Beam
from .fast import Fast
from .search import Counterfactual, Scores, Search

STRATEGIES = SEARCHES  # ("exact", "fast", "beam"): ExplainOptions.search takes these names
DEFAULT_WIDTH = DEFAULT_BEAM_WIDTH  # beam width when none is given


class Strategy(Protocol):
    """What a search strategy offers its driver (and :class:`~sedc.core.search.Pruner`).

    Sets are Python ints, bit masks over segment positions (bit i: the i-th smallest label).
    ``take(n)`` hands out up to ``n`` candidates of the current step, in order; ``feed`` takes
    their scores in the order handed out (in pieces of any size); ``available()`` counts the
    candidates of the step not handed out yet. A strategy that is not ``done`` always has
    candidates available once the earlier ones are fed. Each distinct set is handed out at most
    once (``claim``). ``stop(reason)`` ends the search, keeping the best counterfactual fed so far.
    """

    n_segments: int
    done: bool
    stop_reason: str | None  # "found", "exhausted", "max_time", "max_evals"
    best: Counterfactual | None
    n_evaluated: int

    def available(self) -> int: ...
    def take(self, n: int) -> list[int]: ...
    def feed(self, sets: Sequence[int], scores: Scores) -> None: ...
    def stop(self, reason: str) -> None: ...
    def is_counterfactual(self, predicted: int) -> bool: ...
    def claim(self, bits: int) -> bool: ...
    def choose(self, found: list[Counterfactual]) -> Counterfactual: ...


def make_search(name: str, n_segments: int, original_class: int, original_score: float,
                target: int | None = None, width: int | None = None) -> Strategy:
    """A new search named ``name`` (one of :data:`STRATEGIES`), started at its first step.

    Parameters
    ----------
    name : {"exact", "fast", "beam"}
    n_segments : int
        Number of segments N.
    original_class : int
        Predicted class ``c`` of the unperturbed image.
    original_score : float
        ``p``: the score of ``c`` on the unperturbed image.
    target : int, optional
        SEDC-T target class.
    width : int, optional
        Beam width (``"beam"`` only; default :data:`DEFAULT_WIDTH`).

    Raises
    ------
    ValueError
        For an unknown name, a width given to another strategy than ``"beam"``, or a width < 1.
    """
    if name not in STRATEGIES:
        raise InputError(f"unknown search {name!r}; choose one of {', '.join(STRATEGIES)}")
    if width is not None and name != "beam":
        raise InputError(f"width applies to the beam search only, not to {name!r}")
    if name == "beam":
        return Beam(n_segments, original_class, original_score, target,
                    width=DEFAULT_WIDTH if width is None else width)
    if name == "fast":
        return Fast(n_segments, original_class, original_score, target)
    return Search(n_segments, original_class, original_score, target)
