"""The SEDC / SEDC-T best-first search as a state machine, separate from model evaluation.

The search proposes candidate segment sets (:meth:`Search.take`) and consumes their scores
(:meth:`Search.feed`); whoever drives it decides how candidates are batched, so that several
searches can share one model batch. Sets are Python ints used as bit masks over segment
*positions* 0..N-1 (positions follow ascending label order, so bit order is label order).

The rules are those of ``docs/algorithm.md``: children in ascending label order, the frontier
entry with the highest priority is expanded first (ties: the one that joined first), a step's
counterfactuals are compared only at the end of the step, and every distinct set is evaluated
at most once.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..base.errors import InputError, SearchStateError


@dataclass(frozen=True)
class Scores:
    """What the search needs of one evaluated candidate (arrays of length B).

    Attributes
    ----------
    predicted : numpy.ndarray
        argmax class of each candidate.
    top : numpy.ndarray
        Score of the predicted class.
    original : numpy.ndarray
        Score of the original class.
    target : numpy.ndarray
        Score of the target class (equal to ``original`` for untargeted searches).
    """

    predicted: np.ndarray
    top: np.ndarray
    original: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.predicted)

    def slice(self, start: int, stop: int) -> "Scores":
        return Scores(self.predicted[start:stop], self.top[start:stop],
                      self.original[start:stop], self.target[start:stop])


@dataclass(frozen=True)
class Counterfactual:
    """A candidate that changed the class (or reached the target)."""

    bits: int
    predicted: int
    top: float
    original: float
    target: float


class _Steps:
    """The driving protocol of every search state machine (Search, Pruner, Fast, Beam): hand out
    the candidates of the current step in order (:meth:`available`, :meth:`take`), take their
    scores back in the same order (:meth:`feed`). A subclass says what one score means
    (``_consume_one``) and what happens when its step is complete (``_finish_step``)."""

    done: bool
    n_evaluated: int
    _step: list[int]
    _cursor: int
    _received: int

    def available(self) -> int:
        """Number of candidates of the current step not yet handed out."""
        return 0 if self.done else len(self._step) - self._cursor

    def take(self, n: int) -> list[int]:
        """Hand out up to ``n`` candidates of the current step, in order."""
        if self.done:
            return []
        out = self._step[self._cursor : self._cursor + n]
        self._cursor += len(out)
        return out

    def feed(self, sets: Sequence[int], scores: Scores) -> None:
        """Consume the scores of candidates handed out by :meth:`take`, in the order handed out."""
        if len(sets) != len(scores):
            raise InputError(f"got {len(scores)} scores for {len(sets)} candidates")
        if self._received + len(sets) > self._cursor:
            raise SearchStateError("scores fed for candidates that were not taken")
        for i, bits in enumerate(sets):
            self._consume_one(bits, scores, i)
        self._received += len(sets)
        self.n_evaluated += len(sets)
        if self._received == len(self._step):
            self._finish_step()

    def _consume_one(self, bits: int, scores: Scores, i: int) -> None:
        raise NotImplementedError

    def _finish_step(self) -> None:
        raise NotImplementedError


class Search(_Steps):
    """SEDC (``target=None``) or SEDC-T search over ``n_segments`` segments.

    Parameters
    ----------
    n_segments : int
        Number of segments N.
    original_class : int
        Predicted class ``c`` of the unperturbed image.
    original_score : float
        ``p``: score of ``c`` on the unperturbed image (untargeted priority is ``p - score_c``).
    target : int, optional
        SEDC-T target class ``t``.
    """

    def __init__(self, n_segments: int, original_class: int, original_score: float,
                 target: int | None = None) -> None:
        self.n_segments = n_segments
        self.original_class = original_class
        self.original_score = original_score
        self.target = target
        self.n_evaluated = 0
        self.done = False
        self.stop_reason: str | None = None
        self.best: Counterfactual | None = None
        self._seen: set[int] = {0}
        self._frontier: list[tuple[float, int, int]] = []
        self._joined = 0
        self._step: list[int] = []
        self._cursor = 0
        self._received = 0
        self._step_found: list[Counterfactual] = []
        self._expand(0)

    # -- driving interface (available/take/feed come from _Steps) -----------------------------
    def stop(self, reason: str) -> None:
        """Stop early (``"max_time"``/``"max_evals"``), keeping a counterfactual fed so far."""
        if self.done:
            return
        if self._step_found:
            self.best = self.choose(self._step_found)
        self.done, self.stop_reason = True, reason

    # -- shared with Pruner --------------------------------------------------------------------
    def is_counterfactual(self, predicted: int) -> bool:
        """Whether a set predicted as ``predicted`` is a counterfactual of this search."""
        if self.target is None:
            return predicted != self.original_class
        return predicted == self.target

    def claim(self, bits: int) -> bool:
        """Mark set ``bits`` as evaluated; False when it already was (never evaluate it again)."""
        if bits in self._seen:
            return False
        self._seen.add(bits)
        return True

    def claimed(self, bits: int) -> bool:
        """Whether set ``bits`` was claimed (handed out or skipped as seen); changes nothing."""
        return bits in self._seen

    def choose(self, found: list[Counterfactual]) -> Counterfactual:
        """Largest drop of the original score (SEDC) / highest target score (SEDC-T); first on ties."""
        if self.target is None:
            return min(found, key=lambda cf: cf.original)
        return max(found, key=lambda cf: cf.target)

    # -- internals -----------------------------------------------------------------------------
    def _priority(self, original: float, target: float) -> float:
        if self.target is None:
            return self.original_score - original
        return target - original

    def _consume_one(self, bits: int, scores: Scores, i: int) -> None:
        predicted = int(scores.predicted[i])
        original, target = float(scores.original[i]), float(scores.target[i])
        if self.is_counterfactual(predicted):
            self._step_found.append(Counterfactual(bits, predicted, float(scores.top[i]), original, target))
        else:
            heapq.heappush(self._frontier, (-self._priority(original, target), self._joined, bits))
            self._joined += 1

    def _finish_step(self) -> None:
        if self._step_found:
            self.best = self.choose(self._step_found)
            self.done, self.stop_reason = True, "found"
            return
        while self._frontier:
            _, _, bits = heapq.heappop(self._frontier)
            if self._expand(bits):
                return
        self.done, self.stop_reason = True, "exhausted"

    def _expand(self, parent: int) -> bool:
        """Make the unseen children of ``parent`` the next step; False when it has none."""
        children = []
        for j in range(self.n_segments):
            bit = 1 << j
            if parent & bit:
                continue
            child = parent | bit
            if self.claim(child):
                children.append(child)
        self._step, self._cursor, self._received, self._step_found = children, 0, 0, []
        return bool(children)


class Pruner(_Steps):
    """Makes a counterfactual irreducible: drop segments while it stays a counterfactual.

    Each step evaluates the set minus each one of its segments (ascending label order, skipping
    sets the search already evaluated: those are known not to be counterfactuals); the best
    remaining counterfactual (same rule as the search) replaces the set, until no single segment
    can be dropped. Driven like :class:`Search` (``available``/``take``/``feed``).
    """

    def __init__(self, search: Search) -> None:
        if search.best is None:
            raise InputError("nothing to prune: the search found no counterfactual")
        self._search = search
        self.best = search.best
        self.n_evaluated = 0
        self.done = False
        self.stopped = False  # by a limit: ``best`` may not be irreducible yet
        self._step: list[int] = []
        self._cursor = 0
        self._found: list[Counterfactual] = []
        self._received = 0
        self._next_step()

    def _consume_one(self, bits: int, scores: Scores, i: int) -> None:
        predicted = int(scores.predicted[i])
        if self._search.is_counterfactual(predicted):
            self._found.append(Counterfactual(bits, predicted, float(scores.top[i]),
                                              float(scores.original[i]), float(scores.target[i])))

    def _finish_step(self) -> None:
        if self._found:
            self.best = self._search.choose(self._found)
        if self._found and self._next_step():
            return
        self.done = True

    def stop(self, reason: str) -> None:
        """Stop early; the best counterfactual so far stays valid."""
        self.done = True
        self.stopped = True

    def _next_step(self) -> bool:
        bits = self.best.bits
        step = []
        if bits & (bits - 1):  # at least two segments
            for j in range(self._search.n_segments):
                bit = 1 << j
                if bits & bit and self._search.claim(bits ^ bit):
                    step.append(bits ^ bit)
        self._step, self._cursor, self._received, self._found = step, 0, 0, []
        if not step:
            self.done = True
        return bool(step)
