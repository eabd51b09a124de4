"""The search strategies (``sedc.core.strategies``: exact, fast, beam) as state machines.

Driven here without a model: the scores of every set come from a table (exact multiples of 1/8,
so ties are real ties), or from a dict for the hand-computed cases. Properties (hypothesis):

- each distinct set is evaluated at most once, and the answer is a counterfactual by the table;
- the sizes of ``take``/``feed`` never change what is evaluated or the answer;
- a limit (``max_evals`` truncating ``take``, or ``stop``) only truncates the evaluated sets: a
  stopped run's answer is a counterfactual the full run also evaluated, or none;
- fast's answer is irreducible, and fast finds a counterfactual whenever exact does;
- a beam at least as wide as any depth is breadth-first search: the smallest k.

Hypothesis profiles: tests/conftest.py (``ci`` when ``CI`` is set: derandomized).
"""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from helpers import scoretable as tb
from helpers.scoretable import PAIR_VALUES, VALUES
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sedc.core.beam import Beam
from sedc.core.fast import Fast
from sedc.core.search import Pruner, Scores, Search
from sedc.core.strategies import DEFAULT_WIDTH, STRATEGIES, make_search

# (name, constructor keywords): every strategy the properties run on
VARIANTS = {
    "exact": lambda *a: Search(*a),
    "fast": lambda *a: Fast(*a),
    "fast-all": lambda *a: Fast(*a, prefix="all"),
    "fast-window1": lambda *a: Fast(*a, window=1),
    "fast-window4": lambda *a: Fast(*a, window=4),
    "fast-lookahead3": lambda *a: Fast(*a, lookahead=3),
    "beam1": lambda *a: Beam(*a, width=1),
    "beam2": lambda *a: Beam(*a, width=2),
    "beam3": lambda *a: Beam(*a, width=3),
}
FAST = ("fast", "fast-all", "fast-window1", "fast-window4", "fast-lookahead3")


# -- scores: a table of every set, or a dict ---------------------------------------------------

class Oracle:
    """Scores (K,) of every set of ``width`` segments (bit masks), computed once."""

    def __init__(self, table: tb.Table) -> None:
        self.width = len(table.weights)
        bits = np.arange(2 ** self.width)
        removed = (bits[:, None] >> np.arange(self.width) & 1).astype(np.float32)
        rows = table.base + removed @ table.weights + np.einsum("bi,bj,ijk->bk", removed, removed, table.pairs)
        self.rows = rows.astype(np.float32).astype(np.float64)

    def __call__(self, sets) -> np.ndarray:
        return self.rows[list(sets)].reshape(len(sets), self.rows.shape[1])


class Given:
    """Scores from a dict {frozenset of positions: scores}; any other set is an error."""

    def __init__(self, width: int, rows: dict) -> None:
        self.width = width
        self.table = {sum(1 << j for j in k): np.asarray(v, np.float64) for k, v in rows.items()}

    def __call__(self, sets) -> np.ndarray:
        return np.array([self.table[b] for b in sets]).reshape(len(sets), -1)


def scores_of(oracle, sets, c, target) -> Scores:
    rows = oracle(sets)
    predicted = rows.argmax(axis=1)
    t = c if target is None else target
    return Scores(predicted, rows[np.arange(len(rows)), predicted], rows[:, c], rows[:, t])


def start(oracle, target=None):
    top = oracle([0])[0]
    c = int(np.argmax(top))
    return c, float(top[c])


def run(variant, oracle, target=None, sizes=(None,), max_evals=None, stop_after=None, prune=False):
    """Drive a strategy like ``Job`` does: ``take`` (cycling ``sizes``; None: the whole step,
    capped by ``max_evals``, the image counted), ``feed`` in halves, ``stop`` on the budget or after
    ``stop_after`` takes; a :class:`Pruner` on top with ``prune``. Returns (sets, strategy, pruner)."""
    c, p = start(oracle)
    search = VARIANTS[variant](oracle.width, c, p, target) if isinstance(variant, str) else variant(
        oracle.width, c, p, target)
    phase, pruner, order, k = search, None, [], 0
    while True:
        if phase.done:
            if phase is search and prune and search.best is not None:
                pruner = phase = Pruner(search)
                continue
            return order, search, pruner
        budget = None if max_evals is None else max_evals - 1 - len(order)
        if (budget is not None and budget <= 0) or (stop_after is not None and k >= stop_after):
            phase.stop("max_evals" if budget is not None and budget <= 0 else "max_time")
            continue
        n = sizes[k % len(sizes)] or phase.available()
        k += 1
        taken = phase.take(n if budget is None else min(n, budget))
        assert taken, "a strategy that is not done must hand out candidates"
        half = max(1, len(taken) // 2)
        for part in (taken[:half], taken[half:]):
            if part:
                phase.feed(part, scores_of(oracle, part, c, target))
        order.extend(taken)


def members(bits):
    return [j for j in range(bits.bit_length()) if bits >> j & 1]


def is_cf(oracle, bits, c, target):
    predicted = int(np.argmax(oracle([bits])[0]))
    return predicted != c if target is None else predicted == target


# -- hypothesis: tables of 2..9 segments ---------------------------------------------------------

@st.composite
def problems(draw, max_width=9):
    """(Oracle, target): a random table (decoys, pair interactions, wide margins) and a target."""
    width = draw(st.integers(2, max_width))
    k = draw(st.integers(2, 4))
    base = draw(st.lists(st.sampled_from((0.0, 0.25, 0.5, 0.75, 1.0)), min_size=k, max_size=k))
    if draw(st.booleans()):  # a wide margin: counterfactuals need several segments
        base[draw(st.integers(0, k - 1))] = 1.75
    weights = draw(st.lists(st.sampled_from(VALUES), min_size=width * k, max_size=width * k))
    if draw(st.booleans()):  # decoys: lower every class alike (they rank high, and must be pruned)
        for p in range(width):
            if draw(st.booleans()):
                weights[p * k:(p + 1) * k] = [draw(st.sampled_from((-0.5, -0.25)))] * k
    pairs = np.zeros((width, width, k), np.float32)
    if draw(st.booleans()):  # interactions: prefixes stop being monotone
        for p in range(width):
            for q in range(p + 1, width):
                if draw(st.integers(0, 3)) == 0:
                    pairs[p, q] = draw(st.lists(st.sampled_from(PAIR_VALUES), min_size=k, max_size=k))
    table = tb.Table(np.array(base, np.float32), np.array(weights, np.float32).reshape(width, k), pairs)
    oracle = Oracle(table)
    c, _ = start(oracle)
    target = None
    if draw(st.booleans()):
        target = (c + draw(st.integers(1, k - 1))) % k
    return oracle, target


@st.composite
def ladders(draw, max_width=9):
    """(Oracle, target): counterfactuals of several segments. "real" segments move class 1 toward
    class 0 (a gap of .75 to close), decoys lower every class alike (they drop class 0 the most,
    so they rank first and pruning has to take them out), noise is anything."""
    width = draw(st.integers(3, max_width))
    k = draw(st.integers(2, 3))
    base = [1.0, 0.25, 0.0][:k]
    weights = np.zeros((width, k), np.float32)
    for p in range(width):
        kind = draw(st.sampled_from(("real", "real", "decoy", "noise")))
        if kind == "real":
            weights[p, :2] = [draw(st.sampled_from((0.0, -0.125, -0.25))), draw(st.sampled_from((0.125, 0.25)))]
        elif kind == "decoy":
            weights[p] = draw(st.sampled_from((-0.5, -0.25)))
        else:
            weights[p] = draw(st.lists(st.sampled_from(VALUES), min_size=k, max_size=k))
    pairs = np.zeros((width, width, k), np.float32)
    if draw(st.booleans()):
        for p in range(width):
            for q in range(p + 1, width):
                if draw(st.integers(0, 4)) == 0:
                    pairs[p, q] = draw(st.lists(st.sampled_from(PAIR_VALUES), min_size=k, max_size=k))
    if draw(st.booleans()):  # a poison: ranked first, it cancels every real segment, so no prefix
        p0 = draw(st.integers(0, width - 1))  # flips and fast falls back to the exact search
        weights[p0] = -0.5
        for q in range(width):
            if q != p0:
                pairs[min(p0, q), max(p0, q), 1] -= 1.0
    target = draw(st.sampled_from((None, 1)))
    return Oracle(tb.Table(np.array(base, np.float32), weights, pairs)), target


def any_problems(max_width=9):
    return st.one_of(problems(max_width), ladders(max_width))


variants = st.sampled_from(sorted(VARIANTS))


@settings(max_examples=150)
@given(any_problems(), variants)
def test_each_set_once_and_the_answer_is_a_counterfactual_it_evaluated(problem, variant):
    oracle, target = problem
    order, search, _ = run(variant, oracle, target)
    c, _ = start(oracle)
    event(f"{variant} {search.stop_reason}")
    assert len(order) == len(set(order)) == search.n_evaluated and 0 not in order
    assert all(0 < b < 2 ** oracle.width for b in order)
    assert search.done and search.stop_reason in ("found", "exhausted")
    if search.best is None:
        assert search.stop_reason == "exhausted"
        assert not any(is_cf(oracle, b, c, target) for b in order)
        return
    assert search.stop_reason == "found" and search.best.bits in order
    assert is_cf(oracle, search.best.bits, c, target)
    row = oracle([search.best.bits])[0]
    t = c if target is None else target
    assert (search.best.predicted, search.best.top, search.best.original, search.best.target) == (
        int(np.argmax(row)), row.max(), row[c], row[t])


@given(any_problems(), variants, st.lists(st.sampled_from([1, 2, 3, 5, None]), min_size=1, max_size=4))
def test_take_and_feed_sizes_never_change_the_search(problem, variant, sizes):
    oracle, target = problem
    whole, s1, _ = run(variant, oracle, target)
    for each in ([1], [2], [5], sizes):
        got, s2, _ = run(variant, oracle, target, sizes=each)
        assert got == whole
        assert (s2.best, s2.stop_reason, s2.n_evaluated) == (s1.best, s1.stop_reason, s1.n_evaluated)


@given(any_problems(), variants, st.booleans(), st.data())
def test_a_limit_only_truncates(problem, variant, by_time, data):
    oracle, target = problem
    c, _ = start(oracle)
    full, whole, _ = run(variant, oracle, target, sizes=[1])
    if by_time:  # stop after some takes (max_time): between any two batches
        cut, search, _ = run(variant, oracle, target, sizes=[1, 3],
                             stop_after=data.draw(st.integers(0, len(full))))
    else:  # max_evals: mostly near the end, where a step with a counterfactual gets cut
        max_evals = data.draw(st.one_of(st.integers(max(1, len(full) - 4), len(full) + 2),
                                        st.integers(1, len(full) + 2)))
        cut, search, _ = run(variant, oracle, target, sizes=[2], max_evals=max_evals)
        assert len(cut) == min(max_evals - 1, len(full)) if max_evals > 1 else cut == []
    assert cut == full[: len(cut)]
    event(f"cut: {len(cut) < len(full)}")
    if len(cut) == len(full):
        assert (search.best, search.stop_reason) == (whole.best, whole.stop_reason)
        return
    assert search.done and search.stop_reason == ("max_time" if by_time else "max_evals")
    if search.best is not None:
        assert search.best.bits in cut and is_cf(oracle, search.best.bits, c, target)


@settings(max_examples=100)
@given(any_problems(), st.sampled_from(FAST))
def test_fast_is_irreducible_and_finds_whenever_exact_does(problem, variant):
    oracle, target = problem
    c, _ = start(oracle)
    order, fast, _ = run(variant, oracle, target)
    exact_order, exact, _ = run("exact", oracle, target)
    event(f"{variant} {fast.stop_reason} after {fast.stage}{' (fell back)' if fast.fell_back else ''}"
          f"{', pruned' if fast.stage == 'prune' and fast.best.bits not in fast._prefixes else ''}")
    assert (fast.best is None) == (exact.best is None)
    assert fast.stop_reason == exact.stop_reason
    if fast.best is None:
        return
    answer = fast.best.bits
    for j in members(answer):  # no single segment can go (against the table itself)
        if answer != 1 << j:
            assert not is_cf(oracle, answer ^ (1 << j), c, target)
    if fast.stage == "singles":  # a single flips: exactly the exact search
        assert order == exact_order and fast.best == exact.best
    # after a fallback, fast has replayed the exact search (never evaluating a set twice) and
    # pruned its answer
    if fast.fell_back:
        assert set(exact_order) <= set(order)
        assert answer & exact.best.bits == answer


@given(any_problems(max_width=7), st.sampled_from(FAST + ("beam1", "beam2")))
def test_a_pruner_on_top_ends_irreducible_and_adds_nothing_to_fast(problem, variant):
    oracle, target = problem
    c, _ = start(oracle)
    order, search, pruner = run(variant, oracle, target, prune=True)
    assert len(order) == len(set(order))
    if search.best is None:
        assert pruner is None
        return
    if variant in FAST:
        assert pruner.n_evaluated == 0 and pruner.best == search.best
    answer = pruner.best.bits
    assert is_cf(oracle, answer, c, target) and answer & search.best.bits == answer
    for j in members(answer):
        if answer != 1 << j:
            assert not is_cf(oracle, answer ^ (1 << j), c, target)


@given(any_problems(max_width=7))
def test_a_beam_as_wide_as_any_depth_is_breadth_first(problem):
    oracle, target = problem
    c, _ = start(oracle)
    w = oracle.width
    wide = lambda *a: Beam(*a, width=comb(w, w // 2))
    order, beam, _ = run(wide, oracle, target)
    sizes = [bin(b).count("1") for b in range(1, 2 ** w) if is_cf(oracle, b, c, target)]
    if not sizes:
        assert beam.best is None and beam.stop_reason == "exhausted" and len(order) == 2 ** w - 1
        return
    k = min(sizes)
    event(f"k={k}")
    assert beam.best is not None and bin(beam.best.bits).count("1") == k
    # depth by depth: every set of each size below k, then sets of size k
    assert sorted(order, key=lambda b: bin(b).count("1")) == order
    assert len(order) == sum(comb(w, d) for d in range(1, k)) + sum(
        1 for b in order if bin(b).count("1") == k)


@given(any_problems(), st.integers(1, 3))
def test_beam_sets_below_the_answers_depth_are_not_counterfactuals(problem, width):
    oracle, target = problem
    c, _ = start(oracle)
    order, beam, _ = run(lambda *a: Beam(*a, width=width), oracle, target)
    if beam.best is None:
        return
    k = bin(beam.best.bits).count("1")
    assert all(not is_cf(oracle, b, c, target) for b in order if bin(b).count("1") < k)
    assert max(bin(b).count("1") for b in order) == k
    # depth d > 1 evaluates at most width * (N - d + 1) sets
    for d in range(2, k + 1):
        assert sum(1 for b in order if bin(b).count("1") == d) <= width * (oracle.width - d + 1)


# -- by hand -----------------------------------------------------------------------------------

def drops_table(width, drops, flip_above=0.5):
    """Two classes, class 0 at 1 - D and class 1 at D, D the sum of the removed drops: a set is
    a counterfactual when D > 0.5 (at 0.5 the first maximum, class 0, stays)."""
    weights = [[-d, d] for d in drops]
    return Oracle(tb.table_from([1.0, 0.0], weights))


def test_a_single_counterfactual_stops_fast_after_the_singles_like_exact():
    # {1} and {3} both flip with the same drop: the first in label order wins, after N evaluations
    oracle = Oracle(tb.table_from([1.0, 0.5], [[-0.125, 0], [-0.25, 0.5], [0, 0], [-0.25, 0.5], [0, 0]]))
    for variant in ("exact", "fast", "fast-all", "beam1"):
        order, search, _ = run(variant, oracle)
        assert order == [1, 2, 4, 8, 16] and search.n_evaluated == 5  # N + 1 with the image
        assert search.best.bits == 0b10 and search.stop_reason == "found"


def test_fast_ranks_ties_by_label_gallops_bisects_and_prunes_by_hand():
    # drops .25 .125 .25 0 .125: ranking 0, 2 (tie: label order), 1, 4 (tie), 3
    oracle = drops_table(5, [0.25, 0.125, 0.25, 0.0, 0.125])
    order, fast, _ = run("fast", oracle)
    assert fast._prefixes == [0b1, 0b101, 0b111, 0b10111, 0b11111]
    # singles; P2 {0,2} (D .5, no), P4 (yes), bisect P3 {0,1,2} (yes); the check below P3 is P2,
    # known; prune least important first: 1 -> P2 known, 2 -> {0,1} no, 0 -> {1,2} no; the check
    # pass finds every drop known
    assert order == [1, 2, 4, 8, 16, 0b101, 0b10111, 0b111, 0b11, 0b110]
    assert fast.best.bits == 0b111 and fast.stop_reason == "found"
    assert fast.best.original == pytest.approx(0.375)
    order_all, fast_all, _ = run("fast-all", oracle)
    assert order_all == [1, 2, 4, 8, 16, 0b101, 0b111, 0b10111, 0b11111, 0b11, 0b110]
    assert fast_all.best == fast.best
    exact_order, exact, _ = run("exact", oracle)
    assert exact.best == fast.best and len(exact_order) == 12


def test_fast_sedc_t_ranks_by_the_gain_toward_the_target():
    # classes (c, other, target); gains score_t - score_c of the singles: {2} -.25, {0} -.375,
    # {1} -.625, {3} -1 (the drop of c alone would put {0} first)
    weights = [[-0.5, 0.25, 0.125], [-0.125, 0, 0.25], [-0.25, 0, 0.5], [0, 0, 0]]
    oracle = Oracle(tb.table_from([1.0, 0.5, 0.0], weights))
    order, fast, _ = run("fast", oracle, target=2)
    assert fast._prefixes[:3] == [0b100, 0b101, 0b111]
    # P2 {0,2} says class 1; P4 and P3 say the target; pruning: 1 -> P2 known, 0 -> {1,2} target
    # (kept), 2 -> {1} known; the check pass has every drop known
    assert order == [1, 2, 4, 8, 0b101, 0b1111, 0b111, 0b110]
    assert fast.best.bits == 0b110 and fast.best.predicted == 2
    assert fast.best.target == pytest.approx(0.75)
    assert run("exact", oracle, target=2)[1].best == fast.best


def test_fast_falls_back_to_the_exact_search_reusing_known_scores():
    # {1,3} flips by an interaction, but 0 ranks first and cancels it: no prefix flips
    pairs = {(1, 3): [0, 1.5], (0, 3): [0, -3]}
    oracle = Oracle(tb.table_from([1.0, 0.0], [[-0.25, 0], [-0.125, 0], [-0.125, 0], [0, 0]], pairs))
    exact_order, exact, _ = run("exact", oracle)
    assert exact.best.bits == 0b1010 and len(exact_order) == 13
    for variant, prefixes in (("fast", [0b11, 0b1111, 0b111]), ("fast-all", [0b11, 0b111, 0b1111])):
        order, fast, _ = run(variant, oracle)
        assert order[4:7] == prefixes and fast.fell_back
        # the exact search's sets, minus the prefixes already known, in its order
        assert order[7:] == [b for b in exact_order if b not in order[:7]]
        assert sorted(order) == sorted(exact_order)
        assert fast.best == exact.best and fast.stop_reason == "found"


def test_fast_exhausted_when_nothing_flips():
    oracle = drops_table(4, [0.125, 0.0, 0.125, 0.0])  # D <= .25
    for variant in FAST:
        order, fast, _ = run(variant, oracle)
        assert fast.best is None and fast.stop_reason == "exhausted"
        assert sorted(order) == list(range(1, 16))


def test_gallop_checks_the_prefixes_below_the_bisection_by_hand():
    p = lambda i: (1 << i) - 1
    oracle = flips_oracle(8, {p(3), p(5), p(8)})  # only these prefixes flip
    order, fast, _ = run("fast-window4", oracle)
    # P2 no, P4 no, P8 yes; bisect P6 no, P7 no; check below 8: P5 (P4, P6, P7 known) yes; below
    # 5: P3 yes; below 3: P2 known. Pruning P3: 2 -> P2 known, 1 -> {0,2}, 0 -> {1,2}.
    assert order[8:] == [p(2), p(4), p(8), p(6), p(7), p(5), p(3), 0b101, 0b110]
    assert fast.best.bits == p(3)
    order, narrow, _ = run("fast-window1", oracle)  # the check sees P7 only: P8 is kept
    assert order[8:13] == [p(2), p(4), p(8), p(6), p(7)] and narrow.best.bits == p(8)
    order, wide, _ = run("fast", oracle)  # the default checks P2..P7: P3 and P5 in one step
    assert order[8:] == [p(2), p(4), p(8), p(6), p(7), p(3), p(5), 0b101, 0b110]
    assert wide.best.bits == p(3)
    order, every, _ = run("fast-all", oracle)
    assert order[8:15] == [p(i) for i in range(2, 9)] and every.best.bits == p(3)


def test_fast_linear_pass_keeps_a_removal_that_still_flips():
    # ranking 0, 1, 2, 3; flips: P3 {0,1,2}, P4, {0,2}. Gallop: P2 no, P4 yes, bisect P3 yes; the
    # check below P3 is P2, known. Linear pass on {0,1,2}: 2 -> P2 known (no); 1 -> {0,2} yes,
    # kept; 0 -> {2} known (no). The check pass on {0,2} finds both drops known: irreducible.
    oracle = flips_oracle(4, {0b111, 0b1111, 0b101})
    order, fast, _ = run("fast", oracle)
    assert order[4:] == [0b11, 0b1111, 0b111, 0b101]
    assert fast.best.bits == 0b101 and fast.stop_reason == "found"


def test_fast_check_pass_finds_a_drop_the_linear_pass_missed():
    # ranking 0..4; flips: P5, {0,1,3,4}, {0,1,4}. Gallop: P2 no, P4 no, P5 yes; the check below
    # 5 evaluates P3 (no). Linear pass on P5: 4 -> P4 known (no); 3 -> {0,1,2,4} no; 2 ->
    # {0,1,3,4} yes, kept; 1 -> {0,3,4} no; 0 -> {1,3,4} no. 3 was tried before 2 went: the check
    # pass on {0,1,3,4} evaluates {0,1,4} (yes) and {0,1,3} (no) in one step; {0,1,4} is taken and
    # the linear pass repeats: 4 -> P2 known; 1 -> {0,4} no; 0 -> {1,4} no; the check: all known.
    oracle = flips_oracle(5, {0b11111, 0b11011, 0b10011})
    order, fast, _ = run("fast", oracle)
    assert order[5:] == [0b11, 0b1111, 0b11111, 0b111, 0b10111, 0b11011, 0b11001, 0b11010,
                         0b10011, 0b01011, 0b10001, 0b10010]
    assert fast.best.bits == 0b10011 and fast.stop_reason == "found"


def flips_oracle(width, flips):
    """Ranking 0, 1, ..., width - 1 (decreasing small drops); exactly the sets ``flips`` flip."""
    rows = {}
    for bits in range(2 ** width):
        drop = sum((width - j) / 64 for j in range(width) if bits >> j & 1)
        rows[frozenset(j for j in range(width) if bits >> j & 1)] = [1 - drop, 2.0 if bits in flips else 0.0]
    return Given(width, rows)


@given(any_problems(), st.integers(2, 6))
def test_the_lookahead_of_the_linear_pass_never_changes_the_answer(problem, lookahead):
    oracle, target = problem
    one, s1, _ = run("fast", oracle, target)
    many, s2, _ = run(lambda *a: Fast(*a, lookahead=lookahead), oracle, target)
    assert (s2.best, s2.stop_reason) == (s1.best, s1.stop_reason)
    assert set(one) <= set(many)
    assert len(many) == len(set(many))


@given(any_problems())
def test_gallop_checking_every_prefix_below_answers_as_all_prefixes(problem):
    # the shortest counterfactual prefix is at most the bisection's hi, so checking every prefix
    # below hi finds the one "all" finds; pruning and the fallback then do the same
    oracle, target = problem
    every, s1, _ = run("fast-all", oracle, target)
    wall, s2, _ = run("fast", oracle, target)  # window=None
    assert (s2.best, s2.stop_reason) == (s1.best, s1.stop_reason)
    assert set(wall) <= set(every)


# the worked example of docs/algorithm.md (cat, dog, fox), with the two sets a greedy beam adds
WORKED = {
    (): [0.90, 0.06, 0.04],
    (0,): [0.70, 0.20, 0.10], (1,): [0.60, 0.30, 0.10], (2,): [0.80, 0.10, 0.10], (3,): [0.60, 0.25, 0.15],
    (0, 1): [0.75, 0.15, 0.10], (1, 2): [0.65, 0.25, 0.10], (1, 3): [0.62, 0.30, 0.08],
    (0, 3): [0.30, 0.50, 0.20], (2, 3): [0.20, 0.35, 0.45],
    (0, 1, 3): [0.35, 0.45, 0.20], (1, 2, 3): [0.40, 0.20, 0.40],  # a tie: the first maximum, cat
}


def worked():
    return Given(4, {frozenset(k): v for k, v in WORKED.items()})


def test_beam_on_the_worked_example_by_hand():
    # depth 1: {1} and {3} tie at .30 ({1} joined first), {0} .20, {2} .10
    order, beam, _ = run("beam2", worked())
    # W = 2: children of {1} then of {3} ({1,3} already taken): {0,3} and {2,3} flip; {2,3}
    # drops cat the most. The exact search's answer, with the same number of evaluations.
    assert order == [1, 2, 4, 8, 0b11, 0b110, 0b1010, 0b1001, 0b1100]
    assert beam.best.bits == 0b1100 and beam.best.predicted == 2 and beam.stop_reason == "found"
    assert run("exact", worked())[1].best == beam.best
    # W = 1 (greedy): {1}, then its best child {1,3} (.28), whose children {0,1,3} (dog) flips
    # and {1,2,3} (cat and fox tie at .40: cat) does not: a larger answer than the exact search's
    order, greedy, _ = run("beam1", worked())
    assert order == [1, 2, 4, 8, 0b11, 0b110, 0b1010, 0b1011, 0b1110]
    assert greedy.best.bits == 0b1011 and greedy.best.predicted == 1


def test_beam_exhausted_after_one_set_per_depth_when_nothing_flips():
    oracle = drops_table(4, [0.125, 0.0, 0.125, 0.0])
    order, beam, _ = run("beam1", oracle)
    assert len(order) == 4 + 3 + 2 + 1 and order[-1] == 0b1111
    assert beam.best is None and beam.stop_reason == "exhausted"


def test_fast_stopped_while_pruning_keeps_the_counterfactual_it_has():
    oracle = drops_table(5, [0.25, 0.125, 0.25, 0.0, 0.125])
    full, whole, _ = run("fast", oracle)  # 5 singles, P2, P4, P3, then pruning {0,1}, {1,2}
    for max_evals, best in ((1 + 6, None), (1 + 7, 0b10111), (1 + 8, 0b111), (1 + 9, 0b111)):
        order, fast, _ = run("fast", oracle, max_evals=max_evals)
        assert order == full[: max_evals - 1] and fast.stop_reason == "max_evals"
        assert (fast.best.bits if fast.best else None) == best
    assert run("fast", oracle, max_evals=11)[1].stop_reason == "found"


def test_make_search_names_and_widths():
    assert STRATEGIES == ("exact", "fast", "beam")
    exact = make_search("exact", 4, 0, 0.9)
    assert type(exact) is Search and exact.available() == 4
    fast = make_search("fast", 4, 0, 0.9, target=2)
    assert type(fast) is Fast and fast.target == 2 and fast.prefix == "gallop" and fast.lookahead == 1
    assert fast.window is None
    beam = make_search("beam", 4, 0, 0.9)
    assert type(beam) is Beam and beam.width == DEFAULT_WIDTH
    assert make_search("beam", 4, 0, 0.9, width=5).width == 5
    with pytest.raises(ValueError, match="unknown search 'best'"):
        make_search("best", 4, 0, 0.9)
    with pytest.raises(ValueError, match="width applies to the beam search only"):
        make_search("fast", 4, 0, 0.9, width=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="beam width"):
            make_search("beam", 4, 0, 0.9, width=bad)
    with pytest.raises(ValueError, match="prefix"):
        Fast(4, 0, 0.9, prefix="binary")
    with pytest.raises(ValueError, match="lookahead"):
        Fast(4, 0, 0.9, lookahead=0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_feeding_more_than_was_taken_is_refused(variant):
    oracle = drops_table(4, [0.125, 0.0, 0.125, 0.0])
    c, p = start(oracle)
    search = VARIANTS[variant](4, c, p, None)
    taken = search.take(2)
    with pytest.raises(ValueError, match="scores for"):
        search.feed(taken, scores_of(oracle, taken[:1], c, None))
    with pytest.raises(RuntimeError, match="not taken"):
        search.feed(taken + [8], scores_of(oracle, taken + [8], c, None))


# -- on the real model: the strategies driven through prepare + Evaluator --------------------

def drive_model(search, prepared, evaluator, c, target, batch=16):
    """Drive ``search`` like ``run_jobs``: batches of up to ``batch`` candidates of its step."""
    import torch

    t = c if target is None else target
    n = 1
    while not search.done:
        sets = search.take(batch)
        original = torch.full((len(sets),), c, dtype=torch.long)
        search.feed(sets, evaluator.score_sets(prepared.composer.compose, sets, original,
                                               torch.full((len(sets),), t, dtype=torch.long)))
        n += len(sets)
    return n


@pytest.mark.slow
def test_fast_on_a_real_photo(onnx_model, photos):
    import torch

    import sedc
    from sedc.core.engine import prepare
    from sedc.core.evaluation import Evaluator

    image, segments = photos["coffee"]
    device = torch.device("cpu")
    prepared = prepare(image, segments, "blur", device, seed=0)
    evaluator = Evaluator(onnx_model, device, batch_size=16)
    row = evaluator.forward(prepared.image)[0].float().numpy()
    c, n_segments = int(row.argmax()), len(prepared.segment_ids)
    want = sedc.explain(image, onnx_model, segments, mode="blur")
    exact = Search(n_segments, c, float(row[c]))
    assert drive_model(exact, prepared, evaluator, c, None) == want.n_evaluations  # the driver is explain's
    assert [int(x) for x in prepared.segment_ids[prepared.composer.members([exact.best.bits])[0]]] == want.removed
    fast = Fast(n_segments, c, float(row[c]))
    n = drive_model(fast, prepared, evaluator, c, None)
    assert fast.stop_reason == "found" and fast.n_evaluated == n - 1 and n < want.n_evaluations / 2
    bits = fast.best.bits
    drops = [bits ^ (1 << j) for j in range(n_segments) if bits >> j & 1]
    scores = evaluator.score_sets(prepared.composer.compose, [bits] + drops,
                                  torch.full((len(drops) + 1,), c), torch.full((len(drops) + 1,), c))
    assert scores.predicted[0] != c  # a counterfactual with the real model
    assert all(p == c for p in scores.predicted[1:])  # irreducible
