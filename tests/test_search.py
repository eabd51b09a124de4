"""Search mechanics (``sedc.core.search``) on tiny models whose answers are computed by hand:
``helpers.models.RegionModel`` and ``LookupModel``, and the score tables of ``helpers.scoretable``."""

from __future__ import annotations

import helpers.scoretable as tb
import numpy as np
import pytest
import torch
from helpers.images import grid_segments, zeros_fill
from helpers.models import LookupModel, RegionModel

import sedc
from sedc import reference
from sedc.core.search import Scores, Search

SEG = grid_segments(2, 2)  # labels 0..3
ONES = torch.ones(1, 1, 8, 8)


def run(weights, base, segments=SEG, **options):
    model = RegionModel(segments, np.asarray(weights, dtype=np.float32), np.asarray(base, dtype=np.float32))
    options.setdefault("mode", zeros_fill)
    return sedc.explain(ONES, model, segments, **options), model


def test_best_counterfactual_of_the_last_step_by_hand():
    # singles: {0} .7/.55, {1} .8/.6, {2} .9/.5, {3} 1/.7 -> none flips; {0} has the top priority.
    # children of {0}: {0,1} .5/.65 flips (drop .5), {0,2} no, {0,3} .7/.75 flips (drop .3).
    weights = [[-0.3, 0.05], [-0.2, 0.1], [-0.1, 0.0], [0.0, 0.2]]
    e, _ = run(weights, [1.0, 0.5])
    assert e.found and e.removed == [0, 1] and e.new_class == 1 and e.original_class == 0
    assert e.n_evaluations == 1 + 4 + 3
    assert e.original_class_score == pytest.approx(0.5) and e.new_score == pytest.approx(0.65)
    assert e.mask.sum() == 2 * 16


def test_priority_ties_expand_the_entry_that_joined_first():
    # {0} and {1} tie at priority .3; {0} joined first, so {0,2} (not {1,2}) is found.
    weights = [[-0.3, 0.0], [-0.3, 0.0], [0.0, 0.6], [0.0, 0.0]]
    e, _ = run(weights, [1.0, 0.3])
    assert e.removed == [0, 2]


def test_frontier_ties_across_steps_go_to_the_entry_that_joined_first():
    # {3} (priority .5, joined in step 1) ties with {0,2} and {2,3} (.5, joined in step 2) when
    # the search next picks an entry: {3} joined first, so its child {0,3} is the answer. Ordering
    # ties by the set's bits instead would expand {0,2} (bits 0b0101 < 0b1000) first.
    table = tb.table_from([1.0, 0.25], [[-0.25, 0.25], [-0.125, 0.25], [-0.5, -0.5], [-0.5, -0.125]],
                          {(0, 1): [0.25, 0], (0, 2): [0.25, 0.25], (0, 3): [0, 0.5], (1, 2): [0, -0.25],
                           (2, 3): [0.5, 0]})
    model = tb.TableModel([table])
    e = sedc.explain(tb.image(0, 4), model, np.arange(4)[None], mode=tb.fill, batch_size=4, checks=())
    assert (e.removed, e.n_evaluations, e.new_score) == ([0, 3], 13, 0.875)
    assert [sorted(s) for s in model.seen_by(0)][-2:] == [[0, 3], [1, 3]]
    # the oracle breaks the same ties the same way (toward the entry that joined first)
    ref = reference.sedc(tb.image_hwc(0, 4), reference.TorchPredictor(tb.TableModel([table])), np.arange(4)[None],
                         tb.fill_hwc(0, 4))
    assert sorted(ref.segments_in_explanation) == [0, 3] and ref.new_class == 1


def test_counterfactual_ties_return_the_first_found():
    # {0,1} and {0,2} both flip with the same drop: the first found, in label order, wins.
    weights = [[-0.3, 0.0], [0.0, 0.5], [0.0, 0.5], [0.0, 0.0]]
    e, _ = run(weights, [1.0, 0.3])
    assert e.removed == [0, 1]


def test_labels_need_not_be_contiguous_and_are_taken_in_ascending_order():
    weights = [[-0.3, 0.0], [-0.3, 0.0], [0.0, 0.6], [0.0, 0.0]]
    relabelled = np.array([40, 7, 99, 12])[SEG]  # ascending order: 7 (cell1), 12, 40 (cell0), 99
    model = RegionModel(relabelled, np.asarray(weights, np.float32)[[1, 3, 0, 2]], np.array([1.0, 0.3], np.float32))
    e = sedc.explain(ONES, model, relabelled, mode=zeros_fill)
    # label 7 now joins first with the tied priority, so its child {7, 99} is the answer
    assert e.removed == [7, 99]


def test_targeted_search_by_hand():
    # Target class 2; priority is score_t - score_c.
    # singles: {0} [.7,.4,.1] (pr -.6), {1} [.9,0,.3] (pr -.6), {2} [1,0,.35], {3} [1,0,0]: no target.
    # {0} and {1} tie, {0} joined first: {0,1} [.6,.4,.4] (pr -.2) is the best child.
    # children of {0,1}: {0,1,2} [.6,.4,.75] predicts the target; {0,1,3} does not.
    weights = [[-0.3, 0.4, 0.1], [-0.1, 0.0, 0.3], [0.0, 0.0, 0.35], [0.0, 0.0, 0.0]]
    e, model = run(weights, [1.0, 0.0, 0.0], target=2)
    assert e.found and e.removed == [0, 1, 2] and e.new_class == 2 and e.target == 2
    assert e.new_score == pytest.approx(0.75)
    ref = reference.sedc_t(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(model), SEG, 2,
                           mode=np.zeros((8, 8, 1), np.float32))
    assert sorted(ref.segments_in_explanation) == e.removed and ref.new_class == 2


def test_each_distinct_set_is_evaluated_once_and_never_more_than_the_reference():
    # Pair interactions that raise the original class make best-first backtrack, so sets get
    # re-reached from a second parent: the reference evaluates them again, sedc does not.
    rng = np.random.default_rng(0)
    seg = grid_segments(3, 3)
    ones = torch.ones(1, 1, 12, 12)
    fewer = found = 0
    for _ in range(16):
        weights = rng.normal(0, 0.1, size=(9, 3)).astype(np.float32)
        pairs = rng.normal(0, 0.1, size=(9, 9, 3)).astype(np.float32)
        pairs[..., 0] = np.abs(pairs[..., 0])
        base = np.array([1.0, 0.75, 0.7], np.float32)
        model = RegionModel(seg, weights, base, pairs)
        e = sedc.explain(ones, model, seg, mode=zeros_fill, batch_size=4, checks=())
        sets = model.removed_sets()
        assert len(sets) == len(set(sets)) == e.n_evaluations
        ref = reference.sedc(np.ones((12, 12, 1), np.float32),
                             reference.TorchPredictor(RegionModel(seg, weights, base, pairs)), seg,
                             np.zeros((12, 12, 1), np.float32), max_evals=800)
        assert e.found == ref.found
        assert e.removed == sorted(ref.segments_in_explanation)
        assert e.new_class == ref.new_class
        assert e.n_evaluations <= ref.n_evaluations
        fewer += e.n_evaluations < ref.n_evaluations
        found += e.found
    assert fewer >= 3 and found >= 8, (fewer, found)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 64, "auto"])
def test_answer_does_not_depend_on_batch_size(batch_size):
    rng = np.random.default_rng(3)
    seg = grid_segments(3, 4)
    weights = rng.normal(0, 0.08, size=(12, 4)).astype(np.float32)
    base = np.array([1.0, 0.7, 0.65, 0.2], np.float32)
    expected = sedc.explain(torch.ones(1, 1, 12, 16), RegionModel(seg, weights, base), seg, mode=zeros_fill,
                            batch_size=1)
    e = sedc.explain(torch.ones(1, 1, 12, 16), RegionModel(seg, weights, base), seg, mode=zeros_fill,
                     batch_size=batch_size)
    assert expected.found
    assert (e.removed, e.new_class, e.n_evaluations) == (expected.removed, expected.new_class,
                                                         expected.n_evaluations)


def test_exhausted_when_nothing_changes_the_class():
    e, model = run(np.zeros((4, 2)), [1.0, 0.0])
    assert not e.found and e.stop_reason == "exhausted"
    assert e.n_evaluations == 2 ** 4  # every non-empty subset once, plus the unperturbed image
    assert e.removed == [] and e.new_class == e.original_class and not e.mask.any()
    assert torch.equal(e.perturbed_image, ONES) and not e.explanation_image.any()
    ref = reference.sedc(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(model), SEG,
                         np.zeros((8, 8, 1), np.float32))
    assert not ref.found and ref.stop_reason == "exhausted" and ref.n_evaluations > e.n_evaluations


def test_max_evals_stops_and_says_so():
    e, model = run(np.zeros((4, 2)), [1.0, 0.0], max_evals=6)
    assert not e.found and e.stop_reason == "max_evals" and e.n_evaluations == 6
    assert len(model.removed_sets()) == 6


def test_max_time_stops_and_says_so():
    e, _ = run(np.zeros((4, 2)), [1.0, 0.0], max_time=1e-9)
    assert not e.found and e.stop_reason == "max_time" and e.n_evaluations == 1


def test_single_segment_image_is_not_explained():
    seg = np.zeros((8, 8), dtype=np.int64)
    e, _ = run(np.array([[-1.0, 1.0]]), [1.0, 0.0], segments=seg)
    assert not e.found and e.stop_reason == "exhausted" and e.n_evaluations == 1


def test_prune_drops_segments_while_the_class_stays_changed():
    # best-first finds {0,1,2}; {1,2} alone also flips but was never evaluated by the search.
    weights = [[-0.3, -0.3], [-0.1, 0.2], [-0.1, 0.2], [0.0, 0.0]]
    e, _ = run(weights, [1.0, 0.5])
    assert e.removed == [0, 1, 2]
    pruned, _ = run(weights, [1.0, 0.5], prune=True)
    assert pruned.found and pruned.removed == [1, 2] and pruned.new_class == 1
    assert pruned.n_evaluations == e.n_evaluations + 1  # {1,2}; {0,1} and {0,2} were known


def test_search_state_machine_accepts_partial_feeds():
    search = Search(3, original_class=0, original_score=1.0)
    assert search.available() == 3
    first = search.take(2)
    search.feed(first[:1], Scores(np.array([0]), np.array([0.9]), np.array([0.9]), np.array([0.9])))
    assert not search.done and search.available() == 1
    with pytest.raises(RuntimeError, match="not taken"):
        search.feed(first, Scores(*(np.zeros(2),) * 4))


def test_a_stopped_search_hands_out_nothing():
    search = Search(3, original_class=0, original_score=1.0)
    assert search.take(1) == [1]
    search.stop("max_evals")
    assert search.done and search.available() == 0 and search.take(5) == [] and search.best is None


# ---------------------------------------------------------------------------- limits mid-step
@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_a_limit_mid_step_keeps_the_counterfactual_already_scored(batch_size):
    # The model of test_best_counterfactual_of_the_last_step_by_hand: step 2 scores {0,1} (flips,
    # drop .5), {0,2} (no), {0,3} (flips, drop .3). max_evals=6 = image + 4 singles + {0,1}.
    weights = [[-0.3, 0.05], [-0.2, 0.1], [-0.1, 0.0], [0.0, 0.2]]
    e, model = run(weights, [1.0, 0.5], max_evals=6, batch_size=batch_size)
    assert e.found and e.removed == [0, 1] and e.new_class == 1 and e.stop_reason == "max_evals"
    assert e.n_evaluations == 6 and model.removed_sets()[-1] == frozenset({0, 1})
    assert e.original_class_score == pytest.approx(0.5) and e.mask.sum() == 2 * 16
    e, _ = run(weights, [1.0, 0.5], max_evals=5, batch_size=batch_size)
    assert not e.found and e.removed == [] and e.stop_reason == "max_evals"


# ---------------------------------------------------------------------------- the worked example
WORKED = {  # docs/algorithm.md, "Worked example": (cat, dog, fox) per removed set
    (): (0.90, 0.06, 0.04),
    (0,): (0.70, 0.20, 0.10), (1,): (0.60, 0.30, 0.10), (2,): (0.80, 0.10, 0.10), (3,): (0.60, 0.25, 0.15),
    (0, 1): (0.75, 0.15, 0.10), (1, 2): (0.65, 0.25, 0.10), (1, 3): (0.62, 0.30, 0.08),
    (0, 3): (0.30, 0.50, 0.20), (2, 3): (0.20, 0.35, 0.45),
}


@pytest.mark.parametrize("batch_size", [1, 2, 4, 64])
def test_the_worked_example_of_the_docs(batch_size):
    e = sedc.explain(ONES, LookupModel(SEG, WORKED), SEG, mode=zeros_fill, batch_size=batch_size)
    assert e.found and e.removed == [2, 3] and e.new_class == 2 and e.stop_reason == "found"
    assert e.new_score == pytest.approx(0.45) and e.original_class_score == pytest.approx(0.20)
    assert e.n_evaluations == 10
    e = sedc.explain(ONES, LookupModel(SEG, WORKED), SEG, mode=zeros_fill, batch_size=batch_size, max_evals=9)
    assert e.found and e.removed == [0, 3] and e.new_class == 1 and e.stop_reason == "max_evals"
    e = sedc.explain(ONES, LookupModel(SEG, WORKED), SEG, mode=zeros_fill, batch_size=batch_size, max_evals=8)
    assert not e.found and e.stop_reason == "max_evals"
    pruned = sedc.explain(ONES, LookupModel(SEG, WORKED), SEG, mode=zeros_fill, batch_size=batch_size, prune=True)
    assert pruned.removed == [2, 3] and pruned.n_evaluations == 10


def test_the_reference_on_the_worked_example():
    ref = reference.sedc(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(LookupModel(SEG, WORKED)), SEG,
                         np.zeros((8, 8, 1), np.float32))
    assert ref.found and ref.segments_in_explanation == [3, 2] and ref.new_class == 2
    assert ref.n_evaluations == 11  # {1,3} is scored again as a child of {3}


# ---------------------------------------------------------------------------- the reference's ties
def test_reference_expands_the_tied_entry_that_joined_first():
    # The model of test_priority_ties_expand_the_entry_that_joined_first, worked by hand:
    # singles {0} .7, {1} .7, {2} 1 (class 1 .9), {3} 1: none flips; {0} and {1} tie at .3.
    # {0} joined first: its children {0,1} .4/.3, {0,2} .7/.9 flips -> [0, 2]. Had {1} (joined
    # last) been expanded: {0,1} .4, {1,2} .7/.9 flips -> [1, 2].
    weights = [[-0.3, 0.0], [-0.3, 0.0], [0.0, 0.6], [0.0, 0.0]]
    model = RegionModel(SEG, np.asarray(weights, np.float32), np.array([1.0, 0.3], np.float32))
    ref = reference.sedc(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(model), SEG,
                         np.zeros((8, 8, 1), np.float32))
    assert ref.found and ref.segments_in_explanation == [0, 2] and ref.new_class == 1
    assert ref.n_evaluations == 1 + 4 + 3


def test_reference_returns_the_first_of_tied_counterfactuals():
    # {0} (.7) is expanded; {0,1} and {0,2} both flip to class 1 with cat at .7: the first wins.
    weights = [[-0.3, 0.0], [0.0, 0.5], [0.0, 0.5], [0.0, 0.0]]
    model = RegionModel(SEG, np.asarray(weights, np.float32), np.array([1.0, 0.3], np.float32))
    ref = reference.sedc(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(model), SEG,
                         np.zeros((8, 8, 1), np.float32))
    assert ref.found and ref.segments_in_explanation == [0, 1]


def test_targeted_reference_ties_by_hand():
    # Target class 1, priority score_1 - score_0. Singles {0} [.7,.5], {1} [1,.8], {2} [1,.8] tie
    # at -.2 ({3} [1,.3] is -.7); {0} joined first: {0,1} and {0,2} both reach class 1 at 1.0
    # (the first wins: [0, 1]); {0,3} does not. Expanding {2} instead would give {1,2} at 1.3.
    weights = [[-0.3, 0.2], [0.0, 0.5], [0.0, 0.5], [0.0, 0.0]]
    model = RegionModel(SEG, np.asarray(weights, np.float32), np.array([1.0, 0.3], np.float32))
    ref = reference.sedc_t(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(model), SEG, 1,
                           np.zeros((8, 8, 1), np.float32))
    assert ref.found and ref.segments_in_explanation == [0, 1] and ref.new_class == 1
    assert ref.n_evaluations == 1 + 4 + 3
    e, _ = run(weights, [1.0, 0.3], target=1)
    assert e.removed == [0, 1] and e.new_score == pytest.approx(1.0)


# ---------------------------------------------------------------------------- pruning passes
def test_prune_runs_passes_until_nothing_can_be_dropped():
    # 3 x 3 cells, two classes. Removing cell 1, 2, 3 lowers class 0 by .1 each, cell 4 or 5 by
    # .05; class 1 reaches .95 (above class 0's .9 at most) only when cells 4 and 5 are both
    # removed. Best-first, worked by hand: {1} (first of the .1 ties), {1,2}, {1,2,3} (.3),
    # {1,2,3,4} (.35, joined before {1,2,3,5}), whose child {1,2,3,4,5} is the first flip.
    # Pruning: every set holding 4 and 5 flips, so each pass drops one of 1, 2, 3 (three passes)
    # and the fourth finds that neither 4 nor 5 can go: [4, 5].
    seg = grid_segments(3, 3)
    weights = np.zeros((9, 2), np.float32)
    weights[[1, 2, 3], 0], weights[[4, 5], 0] = -0.1, -0.05
    pairs = np.zeros((9, 9, 2), np.float32)
    pairs[4, 5, 1] = 0.95
    base = np.array([1.0, 0.0], np.float32)
    ones = torch.ones(1, 1, 12, 12)
    e = sedc.explain(ones, RegionModel(seg, weights, base, pairs), seg, mode=zeros_fill)
    assert e.found and e.removed == [1, 2, 3, 4, 5]
    model = RegionModel(seg, weights, base, pairs)
    pruned = sedc.explain(ones, model, seg, mode=zeros_fill, prune=True, checks=())
    assert pruned.found and pruned.removed == [4, 5] and pruned.new_class == 1
    assert pruned.stop_reason == "found"
    # Sets scored after the search (the first is the unperturbed image). Pass 1: {2,3,4,5},
    # {1,3,4,5}, {1,2,4,5} ({1,2,3,5} and {1,2,3,4} were searched); all flip with class 0 at .7,
    # the first wins. Pass 2: {3,4,5}, {2,4,5}, {2,3,5}, {2,3,4}. Pass 3: {4,5}, {3,5}, {3,4}.
    # Pass 4 would score {5} and {4}, both searched in step 1: nothing left, done.
    pruning = model.removed_sets()[e.n_evaluations:]
    assert [len(s) for s in pruning] == [4] * 3 + [3] * 4 + [2] * 3
    assert pruning[0] == frozenset({2, 3, 4, 5}) and pruning[3] == frozenset({3, 4, 5})
    assert pruning[7] == frozenset({4, 5})
    assert pruned.n_evaluations == e.n_evaluations + 10


def test_targeted_pruning_picks_the_highest_target_score_of_a_pass():
    # SEDC-T toward class 2; found [0, 1, 3, 4, 5] after 21 evaluations. Pruning passes find
    # several counterfactuals at once and keep the one with the highest class-2 score each time,
    # ending on [0, 3, 4]: scores 1 - .5 + .125 + .25 = .875, .5 + .25 + .25 + .125 = 1.125 and
    # .25 + .125 + .5 + .5 = 1.375 for class 2.
    weights = [[-0.5, 0.25, 0.125], [-0.5, -0.5, -0.25], [0.0, 0.5, 0.125], [0.125, 0.25, 0.5],
               [0.25, 0.125, 0.5], [-0.5, 0.25, 0.0]]
    table = tb.table_from([1.0, 0.5, 0.25], weights)
    seg = np.arange(6)[None]
    plain = sedc.explain(tb.image(), tb.TableModel([table]), seg, mode=tb.fill, target=2)
    assert (plain.removed, plain.n_evaluations) == ([0, 1, 3, 4, 5], 21)
    for batch_size in (1, 3, "auto"):
        e = sedc.explain(tb.image(), tb.TableModel([table]), seg, mode=tb.fill, target=2, prune=True,
                         batch_size=batch_size)
        assert (e.removed, e.new_class, e.new_score, e.original_class_score) == ([0, 3, 4], 2, 1.375, 0.875)
        assert e.n_evaluations == 29 and e.stop_reason == "found"
