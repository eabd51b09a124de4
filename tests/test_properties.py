"""Property tests (hypothesis) of the search on random small score tables (tests/helpers/scoretable.py).

- ``sedc.explain`` equals the reference (``sedc.reference``), the port of the original code:
  same set, same classes, same images, never more evaluations; SEDC and SEDC-T.
- Every distinct set is evaluated at most once, and ``n_evaluations`` counts exactly the images
  the model saw.
- The answer is the best counterfactual among the sets evaluated (docs/algorithm.md's rule),
  with or without ``max_evals``; a limit only truncates the sequence of evaluated sets.
- Pruning ends on a counterfactual from which no single segment can be dropped.
- The answer does not depend on ``batch_size``, nor on how ``explain_many`` splits and mixes the
  candidates of several images across batches (``window``).
- The search state machine itself gives the same search whatever the sizes of ``take``/``feed``.

Ties are made likely: every value is drawn from a few multiples of 1/8 (exact in float32).
Profiles (registered in tests/conftest.py): ``dev`` (random, the default) and ``ci``
(``derandomize=True``, no example database), chosen by ``HYPOTHESIS_PROFILE`` or, without it,
``ci`` when the ``CI`` variable is set.
"""

from __future__ import annotations

import helpers.scoretable as tb
import numpy as np
import pytest
import torch
from helpers.scoretable import PAIR_VALUES, VALUES
from hypothesis import event, given, settings
from hypothesis import strategies as st

import sedc
from sedc import reference
from sedc.core.search import Pruner, Scores, Search


@st.composite
def tables(draw, n_classes=None, width=tb.WIDTH):
    k = draw(st.integers(2, 4)) if n_classes is None else n_classes
    base = draw(st.lists(st.sampled_from((0.0, 0.25, 0.5, 0.75, 1.0)), min_size=k, max_size=k))
    if draw(st.booleans()):  # a wide margin: counterfactuals need several segments (and pruning)
        base[draw(st.integers(0, k - 1))] = 1.75
    weights = draw(st.lists(st.sampled_from(VALUES), min_size=width * k, max_size=width * k))
    if draw(st.booleans()):  # decoys: lower every class alike, so best-first takes them first and
        for p in range(width):  # pruning has something to drop
            if draw(st.booleans()):
                weights[p * k:(p + 1) * k] = [draw(st.sampled_from((-0.5, -0.25)))] * k
    pairs = np.zeros((width, width, k), np.float32)
    if draw(st.booleans()):
        for p in range(width):
            for q in range(p + 1, width):
                pairs[p, q] = draw(st.lists(st.sampled_from(PAIR_VALUES), min_size=k, max_size=k))
    return tb.Table(np.array(base, np.float32), np.array(weights, np.float32).reshape(width, k), pairs)


def segmentations(width=tb.WIDTH):
    """A (1, W) label map: any labels 0..8, so N is 1..W, labels need not be contiguous."""
    return st.lists(st.integers(0, 8), min_size=width, max_size=width).map(
        lambda labels: np.array([labels], dtype=np.int64))


@st.composite
def problems(draw, targeted=None):
    """(table, segments, target): target is None, or a class other than the unperturbed one."""
    table = draw(tables())
    segments = draw(segmentations())
    c = int(np.argmax(table.scores(frozenset())))
    use_target = draw(st.booleans()) if targeted is None else targeted
    target = None
    if use_target:
        target = (c + draw(st.integers(1, table.n_classes - 1))) % table.n_classes
    return table, segments, target


@st.composite
def decoy_problems(draw):
    """Tables where best-first takes decoys (pixels that lower every class alike) before the
    pixels that really raise class 1, so the search's answer holds decoys for pruning to drop."""
    k = draw(st.integers(2, 3))
    base = [1.0, 0.5, 0.25][:k]
    weights = np.zeros((tb.WIDTH, k), np.float32)
    n_decoys = draw(st.integers(1, 3))
    n_real = draw(st.integers(2, tb.WIDTH - n_decoys))
    kinds = ["decoy"] * n_decoys + ["real"] * n_real + ["noise"] * (tb.WIDTH - n_decoys - n_real)
    for p, kind in enumerate(draw(st.permutations(kinds))):
        if kind == "decoy":
            weights[p] = draw(st.sampled_from((-0.5, -0.25)))
        elif kind == "real":
            weights[p] = [draw(st.sampled_from((0.0, -0.125))), draw(st.sampled_from((0.125, 0.25)))] + [
                draw(st.sampled_from(VALUES)) for _ in range(k - 2)]
        else:
            weights[p] = [draw(st.sampled_from(VALUES)) for _ in range(k)]
    table = tb.Table(np.array(base, np.float32), weights, np.zeros((tb.WIDTH, tb.WIDTH, k), np.float32))
    distinct = st.lists(st.integers(0, 8), min_size=tb.WIDTH, max_size=tb.WIDTH, unique=True).map(
        lambda labels: np.array([labels], dtype=np.int64))
    return table, draw(st.one_of(distinct, segmentations())), draw(st.sampled_from((None, 1)))


def explain(table, segments, target=None, **options):
    model = tb.TableModel([table])
    e = sedc.explain(tb.image(), model, segments, mode=tb.fill, target=target, checks=(), **options)
    return e, [tb.pixels_to_labels(s, segments) for s in model.seen_by(0)], model


def labels_sets(sets, segments):
    return [tb.labels_to_pixels(s, segments) for s in sets]


def check_answer(e, table, segments, target, seen_pixels):
    """The answer is the best counterfactual (by the rule) among the sets evaluated, with the
    table's scores, and the images of the explanation are those of that set."""
    c = int(np.argmax(table.scores(frozenset())))
    assert e.original_class == c and e.original_score == pytest.approx(table.scores(frozenset())[c], abs=0)
    best = tb.best_counterfactual(seen_pixels, table, c, target)
    if best is None:
        assert not e.found and e.removed == [] and e.new_class == c and not e.mask.any()
        assert not e.explanation_image.any() and torch.equal(e.perturbed_image, tb.image())
        return
    assert e.found
    assert e.removed == sorted(tb.pixels_to_labels(best, segments))
    scores = table.scores(best)
    assert e.new_class == int(np.argmax(scores))
    assert e.new_score == scores[e.new_class] and e.original_class_score == scores[c]
    removed = np.isin(np.arange(tb.WIDTH), list(best))
    np.testing.assert_array_equal(e.mask, removed[None])
    np.testing.assert_array_equal(e.perturbed_image[0, 0, 0].numpy(), (~removed).astype(np.float32))
    np.testing.assert_array_equal(e.explanation_image[0], (tb.image()[0].permute(1, 2, 0).numpy()[0]
                                                           * removed[:, None]))


@settings(max_examples=60)
@given(st.one_of(problems(), decoy_problems()))
def test_explain_equals_the_reference(problem):
    table, segments, target = problem
    e, seen, model = explain(table, segments, target, batch_size=1)
    predictor = reference.TorchPredictor(tb.TableModel([table]))
    if target is None:
        ref = reference.sedc(tb.image_hwc(), predictor, segments, tb.fill_hwc())
    else:
        ref = reference.sedc_t(tb.image_hwc(), predictor, segments, target, tb.fill_hwc())
    event(f"N={len(np.unique(segments))} {'SEDC-T' if target is not None else 'SEDC'} {ref.stop_reason}")
    event(f"reference re-evaluated sets: {ref.n_evaluations > e.n_evaluations}")
    assert ref.stop_reason in ("found", "exhausted")
    assert (e.found, e.stop_reason) == (ref.found, ref.stop_reason)
    assert e.original_class == ref.predicted_class_index
    assert e.removed == sorted(ref.segments_in_explanation)
    assert e.new_class == ref.new_class
    assert e.n_evaluations <= ref.n_evaluations == predictor.n_calls
    np.testing.assert_array_equal(e.perturbed_image[0].permute(1, 2, 0).numpy(), ref.perturbation)
    np.testing.assert_array_equal(e.explanation_image, ref.explanation)
    # every distinct set at most once, and n_evaluations counts exactly what the model saw
    assert len(seen) == len(set(seen)) == e.n_evaluations
    assert seen[0] == frozenset()
    pixel_sets = labels_sets(seen, segments)
    check_answer(e, table, segments, target, pixel_sets)
    n = len(np.unique(segments))
    if e.stop_reason == "exhausted" and n > 1:  # nothing flips: every non-empty set, once
        assert e.n_evaluations == 2 ** n


@given(st.one_of(problems(), decoy_problems()), st.booleans(), st.data())
def test_a_limit_only_truncates_the_evaluated_sets(problem, prune, data):
    table, segments, target = problem
    full, full_seen, _ = explain(table, segments, target, batch_size=1, prune=prune)
    # mostly inside the run, near its end (where a step with a counterfactual gets cut)
    max_evals = data.draw(st.one_of(st.integers(max(1, full.n_evaluations - 4), full.n_evaluations + 1),
                                    st.integers(1, full.n_evaluations + 1)))
    event(f"cut: {max_evals < full.n_evaluations}")
    e, seen, _ = explain(table, segments, target, batch_size=3, prune=prune, max_evals=max_evals)
    assert e.n_evaluations == len(seen) == min(max_evals, full.n_evaluations)
    assert seen == full_seen[: len(seen)]
    if len(seen) == len(full_seen):
        assert (e.removed, e.found, e.stop_reason, e.new_class) == (
            full.removed, full.found, full.stop_reason, full.new_class)
    else:
        assert e.stop_reason in ("max_evals", "found")
        assert e.stop_reason == "max_evals" or (prune and full.found)
    if not prune:
        check_answer(e, table, segments, target, labels_sets(seen, segments))


@given(decoy_problems(), st.sampled_from([1, 2, "auto"]))
def test_pruning_ends_on_an_irreducible_counterfactual(problem, batch_size):
    table, segments, target = problem
    plain, plain_seen, _ = explain(table, segments, target)
    e, seen, _ = explain(table, segments, target, prune=True, batch_size=batch_size)
    assert len(seen) == len(set(seen)) == e.n_evaluations
    assert e.found == plain.found and e.stop_reason == plain.stop_reason
    if not e.found:
        assert e.n_evaluations == plain.n_evaluations
        return
    assert set(e.removed) <= set(plain.removed)
    event(f"pruned {len(plain.removed)} -> {len(e.removed)}")
    assert seen[: plain.n_evaluations] == plain_seen
    c = e.original_class
    chosen = tb.labels_to_pixels(e.removed, segments)
    scores = table.scores(chosen)
    assert tb.is_counterfactual(scores, c, target)
    assert e.new_class == int(np.argmax(scores)) and e.original_class_score == scores[c]
    if len(e.removed) > 1:
        for label in e.removed:
            smaller = tb.labels_to_pixels(set(e.removed) - {label}, segments)
            assert not tb.is_counterfactual(table.scores(smaller), c, target), (e.removed, label)


@given(problems(), st.sampled_from([2, 3, 5, 64, "auto"]), st.booleans(),
       st.one_of(st.none(), st.integers(2, 30)))
def test_answer_does_not_depend_on_batch_size(problem, batch_size, prune, max_evals):
    table, segments, target = problem
    one, one_seen, _ = explain(table, segments, target, batch_size=1, prune=prune, max_evals=max_evals)
    e, seen, model = explain(table, segments, target, batch_size=batch_size, prune=prune, max_evals=max_evals)
    assert seen == one_seen
    assert (e.removed, e.found, e.stop_reason, e.new_class, e.new_score, e.original_class_score,
            e.n_evaluations) == (one.removed, one.found, one.stop_reason, one.new_class, one.new_score,
                                 one.original_class_score, one.n_evaluations)
    if isinstance(batch_size, int):
        assert max(model.batches) <= batch_size


@given(st.lists(st.tuples(tables(n_classes=3), segmentations()), min_size=2, max_size=4),
       st.sampled_from([1, 2, 3, 7, 64]), st.integers(1, 5), st.booleans(),
       st.one_of(st.none(), st.integers(2, 30)), st.booleans())
def test_explain_many_equals_explain_however_batches_are_split(items, batch_size, window, prune,
                                                                max_evals, targeted):
    tables_ = [t for t, _ in items]
    segs = [s for _, s in items]
    originals = [int(np.argmax(t.scores(frozenset()))) for t in tables_]
    target = next((k for k in range(3) if k not in originals), None) if targeted else None
    model = tb.TableModel(tables_)
    images = [tb.image(i) for i in range(len(items))]
    many = sedc.explain_many(images, model, segs, mode=tb.fill, target=target, batch_size=batch_size,
                             window=window, prune=prune, max_evals=max_evals)
    for i, got in enumerate(many):
        alone_model = tb.TableModel(tables_)
        want = sedc.explain(images[i], alone_model, segs[i], mode=tb.fill, target=target, batch_size=1,
                            prune=prune, max_evals=max_evals)
        assert model.seen_by(i) == alone_model.seen_by(i)
        assert (got.removed, got.found, got.stop_reason, got.new_class, got.new_score,
                got.original_class_score, got.n_evaluations, got.original_class) == (
            want.removed, want.found, want.stop_reason, want.new_class, want.new_score,
            want.original_class_score, want.n_evaluations, want.original_class)
        torch.testing.assert_close(got.perturbed_image, want.perturbed_image, rtol=0, atol=0)
        np.testing.assert_array_equal(got.mask, want.mask)


# -- the state machines alone (no model, no torch): many more examples, cheaply ----------------

def table_scores(table, bits_list, c, target):
    rows = [table.scores(frozenset(j for j in range(tb.WIDTH) if bits >> j & 1)) for bits in bits_list]
    rows = np.array(rows, np.float64).reshape(len(bits_list), table.n_classes)
    predicted = rows.argmax(axis=1)
    t = c if target is None else target
    return Scores(predicted, rows[np.arange(len(rows)), predicted], rows[:, c], rows[:, t])


def drive(table, target, sizes, prune=True):
    """Run Search (+ Pruner) on ``table`` (one segment per pixel) taking ``sizes`` candidates at a
    time (cycled); returns (evaluated sets in order, search, pruner)."""
    top = table.scores(frozenset()).astype(np.float64)
    c = int(np.argmax(top))
    search = Search(tb.WIDTH, c, float(top[c]), target)
    order, k = [], 0
    phase = search
    pruner = None
    while True:
        if phase.done:
            if phase is search and prune and search.best is not None:
                pruner = phase = Pruner(search)
                continue
            break
        n = sizes[k % len(sizes)]
        k += 1
        taken = phase.take(n)
        assert taken, "a phase that is not done must hand out candidates"
        assert len(taken) == min(n, len(taken) + phase.available())
        # feed in random-sized pieces too: the sizes of feed need not match take
        for start in range(0, len(taken), max(1, n // 2)):
            part = taken[start:start + max(1, n // 2)]
            phase.feed(part, table_scores(table, part, c, target))
        order.extend(taken)
    return order, search, pruner


@settings(max_examples=150)
@given(st.one_of(tables(), decoy_problems().map(lambda problem: problem[0])), st.booleans(),
       st.lists(st.integers(1, 9), min_size=1, max_size=5), st.booleans(), st.data())
def test_search_is_the_same_whatever_the_take_and_feed_sizes(table, targeted, sizes, prune, data):
    c = int(np.argmax(table.scores(frozenset())))
    target = (c + data.draw(st.integers(1, table.n_classes - 1))) % table.n_classes if targeted else None
    one, s1, p1 = drive(table, target, [1], prune)
    got, s2, p2 = drive(table, target, sizes, prune)
    assert got == one and len(set(got)) == len(got) and 0 not in got
    assert s2.n_evaluated + (p2.n_evaluated if p2 else 0) == len(got)
    assert (s1.stop_reason, s1.best) == (s2.stop_reason, s2.best)
    assert (p1.best if p1 else None) == (p2.best if p2 else None)
    pixel_sets = [frozenset(j for j in range(tb.WIDTH) if b >> j & 1) for b in got[: s2.n_evaluated]]
    best = tb.best_counterfactual(pixel_sets, table, c, target)
    assert (s2.best.bits if s2.best else None) == (None if best is None else sum(1 << j for j in best))
    assert s2.stop_reason == ("found" if best is not None else "exhausted")
    if best is None:
        assert s2.n_evaluated == 2 ** tb.WIDTH - 1
