"""The "fast" SEDC / SEDC-T search: rank the segments, cut the ranking, prune the answer.

The exact search (:class:`~sedc.core.search.Search`) evaluates every remaining segment at each
expansion, so it costs about N × depth evaluations. This search ranks the segments once and looks
for a counterfactual among the prefixes of the ranking. The algorithm, exactly:

1. **Singles.** Evaluate every single segment {j}, in ascending label order: the exact search's
   first step. If it holds a counterfactual, stop exactly as the exact search does (``"found"``,
   its answer, N + 1 evaluations with the image).
2. **Rank.** Order the segments by the drop their removal caused, largest first — SEDC: the
   original class's drop ``p - score_c``; SEDC-T: the gain toward the target
   ``score_t - score_c`` (the exact search's priorities) — on equal drops, ascending label.
   ``P_i`` is the set of the first i ranked segments (``P_1`` is a single: not a counterfactual).
3. **Cut.** Find a counterfactual prefix ``P_m``, short for few evaluations:

   - ``prefix="gallop"`` (the default): evaluate ``P_2, P_4, P_8, ...`` (the last one ``P_N``),
     one at a time, until one is a counterfactual ``P_hi`` (the one before, ``P_lo``, is not);
     bisect between them (``mid = (lo + hi) // 2``; a counterfactual ``P_mid`` becomes ``hi``,
     another ``lo``) until ``hi = lo + 1``; then check the prefixes below in one step (those not
     evaluated yet): ``P_i`` for ``2 <= i < hi`` (``window=None``, the default) or for
     ``max(2, hi - window) <= i < hi``. If some are counterfactuals, the shortest becomes ``hi``
     (and with a window the check repeats below it). If even ``P_N`` is no counterfactual, every
     prefix not yet evaluated is evaluated in one step and the shortest counterfactual taken.
   - ``prefix="all"``: evaluate ``P_2 .. P_N`` in one step; take the shortest counterfactual.

   Prefixes are not monotone (``P_5`` may flip the class while ``P_8`` does not), so bisection
   alone can land on a long one. Checking every prefix below ``hi`` makes the answer the
   shortest counterfactual prefix, the one ``"all"`` finds (the shortest is at most ``hi``), for
   about ``2 log2(m) + m`` evaluations instead of ``N - 1``; a window of 4 cost 1-3% fewer
   evaluations on real photos but returned prefixes up to 3x longer
   (``benchmarks/search_quality.py``, ``docs/benchmarks/search_quality.md``).

4. **Prune** (always). Make the counterfactual B irreducible: one *linear pass* over its members,
   least important first (reverse ranking order), evaluates ``B \\ {j}`` and keeps the removal
   when that set is still a counterfactual (by default each try is one step of one set: the next
   try depends on it; ``lookahead=L`` evaluates the next L tries in one step as if the earlier
   ones failed, which gives the same removals in fewer steps for at most L - 1 extra evaluations
   per removal). Then a *check pass* evaluates ``B \\ {j}`` for every member j in one step
   (ascending label order; sets already evaluated are not evaluated again). If some are
   counterfactuals, B becomes the best of them by the search's rule (:meth:`Search.choose`) and
   the linear pass and check repeat; otherwise B is irreducible and the search ends
   (``"found"``). A single segment is irreducible. Pruning never evaluates all drops of every
   intermediate set (the O(k²) "best drop, repeat" pruner of :class:`~sedc.core.search.Pruner`).
5. **Fallback.** If no prefix is a counterfactual (not even the full set), the exact best-first
   search continues from its first step, in the budget left, reusing every score already known:
   a set the exact search proposes that was evaluated before (a prefix) is fed its known scores
   and not evaluated again. It returns the exact search's answer (or ``"exhausted"``), which is
   then pruned as in 4. So without limits this search finds a counterfactual exactly when the
   exact search does.

Every distinct set is evaluated at most once (:meth:`Fast.claim`). The answer is always a set
that was evaluated and is a counterfactual. ``stop(reason)`` keeps the best counterfactual
confirmed so far: the exact search's (singles, fallback), the shortest counterfactual prefix
evaluated (cut), or the current pruned set (prune; its ``stop_reason`` is then the limit, as the
set may not be irreducible yet).

The plan is written as a generator (:meth:`Fast._plan`): each ``yield`` is one step, the sets it
wants scored; the sets not yet evaluated are handed out through ``take``/``feed`` like any other
step, and the generator resumes when their scores are in.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..base.errors import InputError
from .search import Counterfactual, Scores, Search, _Steps

PREFIX_METHODS = ("gallop", "all")


class Fast(_Steps):
    """The rank-then-cut search (see the module docstring), driven like :class:`Search`.

    Parameters
    ----------
    n_segments, original_class, original_score, target
        As for :class:`~sedc.core.search.Search`.
    prefix : {"gallop", "all"}
        How the shortest counterfactual prefix is looked for.
    window : int or None
        ``"gallop"``: how many prefixes below the bisection's answer are checked (>= 1); None
        (the default): all of them, so the prefix found is the shortest counterfactual prefix,
        as with ``"all"``.
    lookahead : int
        Tries of the linear pruning pass evaluated in one step (>= 1; the answer is the same for
        any value, see :meth:`_linear_pass`).
    """

    def __init__(self, n_segments: int, original_class: int, original_score: float,
                 target: int | None = None, prefix: str = "gallop", window: int | None = None,
                 lookahead: int = 1) -> None:
        if prefix not in PREFIX_METHODS:
            raise InputError(f"prefix must be one of {PREFIX_METHODS}; got {prefix!r}")
        if (window is not None and window < 1) or lookahead < 1:
            raise InputError(f"window and lookahead must be >= 1; got {window!r}, {lookahead!r}")
        self.n_segments = n_segments
        self.original_class = original_class
        self.original_score = original_score
        self.target = target
        self.prefix = prefix
        self.window = window
        self.lookahead = lookahead
        self.n_evaluated = 0
        self.done = False
        self.stop_reason: str | None = None
        self.best: Counterfactual | None = None
        self.stage = "singles"  # singles, cut, fallback, prune
        self.fell_back = False  # whether no prefix was a counterfactual (the exact search ran)
        self._exact = Search(n_segments, original_class, original_score, target)
        self._known: dict[int, tuple[int, float, float, float]] = {}
        self._seen: set[int] = {0}
        self._pending: list[int] = []  # the exact search's current step (singles, fallback)
        self._prefixes: list[int] = []
        self._current: int | None = None  # the counterfactual being pruned
        self._step: list[int] = []
        self._cursor = 0
        self._received = 0
        self._plan_steps = self._plan()
        self._advance()

    # -- driving interface (available/take/feed come from _Steps) -----------------------------
    def _consume_one(self, bits: int, scores: Scores, i: int) -> None:
        self._known[bits] = (int(scores.predicted[i]), float(scores.top[i]),
                             float(scores.original[i]), float(scores.target[i]))

    def _finish_step(self) -> None:
        self._advance()

    def stop(self, reason: str) -> None:
        """Stop early (``"max_time"``/``"max_evals"``), keeping the best counterfactual so far."""
        if self.done:
            return
        if self.stage in ("singles", "fallback"):
            fed = 0
            while fed < len(self._pending) and self._pending[fed] in self._known:
                fed += 1
            if fed:
                self._exact.feed(self._pending[:fed], self._scores(self._pending[:fed]))
            self._exact.stop(reason)
            self.best = self._exact.best
        elif self.stage == "cut":
            shortest = next((b for b in self._prefixes if b in self._known and self._is_cf(b)), None)
            self.best = None if shortest is None else self._record(shortest)
        else:  # prune: the current set is a counterfactual
            self.best = self._record(self._current)
        self._plan_steps.close()
        self.done, self.stop_reason = True, reason

    # -- the protocol shared with Search and Pruner -------------------------------------------
    def is_counterfactual(self, predicted: int) -> bool:
        """Whether a set predicted as ``predicted`` is a counterfactual of this search."""
        return self._exact.is_counterfactual(predicted)

    def claim(self, bits: int) -> bool:
        """Mark set ``bits`` as evaluated; False when it already was (never evaluate it again)."""
        if bits in self._seen:
            return False
        self._seen.add(bits)
        return True

    def choose(self, found: list[Counterfactual]) -> Counterfactual:
        """The exact search's rule (:meth:`Search.choose`)."""
        return self._exact.choose(found)

    # -- internals -----------------------------------------------------------------------------
    def _advance(self) -> None:
        """Resume the plan until it wants a step with a set not yet evaluated, or ends."""
        while True:
            try:
                wanted = next(self._plan_steps)
            except StopIteration:
                self.done = True
                self._step, self._cursor, self._received = [], 0, 0
                return
            step = [bits for bits in wanted if self.claim(bits)]
            if step:
                self._step, self._cursor, self._received = step, 0, 0
                return

    def _is_cf(self, bits: int) -> bool:
        return self.is_counterfactual(self._known[bits][0])

    def _record(self, bits: int) -> Counterfactual:
        return Counterfactual(bits, *self._known[bits])

    def _scores(self, sets: Sequence[int]) -> Scores:
        rows = np.array([self._known[b] for b in sets], dtype=np.float64).reshape(len(sets), 4)
        return Scores(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3])

    def _priority(self, bits: int) -> float:
        _, _, original, target = self._known[bits]
        if self.target is None:
            return self.original_score - original
        return target - original

    def _exact_steps(self, first_only: bool) -> Iterator[list[int]]:
        """Run the exact search's steps, evaluating only the sets not known yet."""
        exact = self._exact
        while not exact.done:
            self._pending = exact.take(exact.available())
            yield self._pending
            exact.feed(self._pending, self._scores(self._pending))
            self._pending = []
            if first_only:
                return

    def _plan(self) -> Iterator[list[int]]:
        n = self.n_segments
        yield from self._exact_steps(first_only=True)
        if self._exact.done:  # a single segment flips the class (or nothing is left)
            self.best, self.stop_reason = self._exact.best, self._exact.stop_reason
            return
        rank = sorted(range(n), key=lambda j: (-self._priority(1 << j), j))
        bits = 0
        for j in rank:
            bits |= 1 << j
            self._prefixes.append(bits)
        self.stage = "cut"
        size = yield from (self._cut_gallop() if self.prefix == "gallop" else self._cut_all())
        if size is None:
            self.stage, self.fell_back = "fallback", True
            yield from self._exact_steps(first_only=False)
            if self._exact.best is None:
                self.stop_reason = "exhausted"
                return
            found = self._exact.best.bits
        else:
            found = self._prefixes[size - 1]
        self._current, self.stage = found, "prune"
        yield from self._prune(rank)
        self.best, self.stop_reason = self._record(self._current), "found"

    def _prefix_cf(self, size: int) -> bool:
        return self._is_cf(self._prefixes[size - 1])

    def _shortest(self, sizes: range) -> int | None:
        return next((i for i in sizes if self._prefix_cf(i)), None)

    def _cut_all(self) -> Iterator[list[int]]:
        n = self.n_segments
        yield self._prefixes[1:]
        return self._shortest(range(2, n + 1))

    def _cut_gallop(self) -> Iterator[list[int]]:
        n = self.n_segments
        lo, size = 1, 2
        while True:
            size = min(size, n)
            yield [self._prefixes[size - 1]]
            if self._prefix_cf(size):
                hi = size
                break
            if size == n:  # even the full set is no counterfactual: sweep every other prefix
                yield [self._prefixes[i - 1] for i in range(2, n)]
                return self._shortest(range(2, n))
            lo, size = size, size * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            yield [self._prefixes[mid - 1]]
            if self._prefix_cf(mid):
                hi = mid
            else:
                lo = mid
        while True:
            below = range(2 if self.window is None else max(2, hi - self.window), hi)
            yield [self._prefixes[i - 1] for i in below]
            shorter = self._shortest(below)
            if shorter is None:
                return hi
            hi = shorter

    def _prune(self, rank: list[int]) -> Iterator[list[int]]:
        while True:
            yield from self._linear_pass(rank)
            current = self._current
            if not current & (current - 1):
                return
            drops = [current ^ (1 << j) for j in range(self.n_segments) if current >> j & 1]
            yield drops
            found = [self._record(d) for d in drops if self._is_cf(d)]
            if not found:
                return
            self._current = self.choose(found).bits

    def _linear_pass(self, rank: list[int]) -> Iterator[list[int]]:
        """Try dropping each member, least important first; keep a drop that stays a counterfactual.

        ``lookahead`` L tries the next L members against the current set in one step, as if the
        earlier ones failed; the first success is kept and the tries after it are discarded (their
        sets stay known). Any L gives the same removals as L = 1, with fewer steps and at most
        L - 1 extra evaluations per removal.
        """
        queue = [j for j in reversed(rank) if self._current >> j & 1]
        i = 0
        while i < len(queue):
            current = self._current
            if not current & (current - 1):
                return
            chunk = queue[i:i + self.lookahead]
            yield [current ^ (1 << j) for j in chunk]
            i += len(chunk)
            for position, j in enumerate(chunk):
                if self._is_cf(current ^ (1 << j)):
                    self._current = current ^ (1 << j)
                    i -= len(chunk) - position - 1
                    break
