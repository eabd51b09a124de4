"""Search mechanics on tiny models whose answers are computed by hand (see conftest.RegionModel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sedc
from sedc.core import reference
from sedc.core.search import Scores, Search

from conftest import RegionModel, grid_segments, zeros_fill

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
    assert e.found and e.segments == [0, 1] and e.new_class == 1 and e.original_class == 0
    assert e.n_evaluations == 1 + 4 + 3
    assert e.original_class_score == pytest.approx(0.5) and e.new_score == pytest.approx(0.65)
    assert e.mask.sum() == 2 * 16


def test_priority_ties_expand_the_entry_that_joined_first():
    # {0} and {1} tie at priority .3; {0} joined first, so {0,2} (not {1,2}) is found.
    weights = [[-0.3, 0.0], [-0.3, 0.0], [0.0, 0.6], [0.0, 0.0]]
    e, _ = run(weights, [1.0, 0.3])
    assert e.segments == [0, 2]


def test_counterfactual_ties_return_the_first_found():
    # {0,1} and {0,2} both flip with the same drop: the first found, in label order, wins.
    weights = [[-0.3, 0.0], [0.0, 0.5], [0.0, 0.5], [0.0, 0.0]]
    e, _ = run(weights, [1.0, 0.3])
    assert e.segments == [0, 1]


def test_labels_need_not_be_contiguous_and_are_taken_in_ascending_order():
    weights = [[-0.3, 0.0], [-0.3, 0.0], [0.0, 0.6], [0.0, 0.0]]
    relabelled = np.array([40, 7, 99, 12])[SEG]  # ascending order: 7 (cell1), 12, 40 (cell0), 99
    model = RegionModel(relabelled, np.asarray(weights, np.float32)[[1, 3, 0, 2]], np.array([1.0, 0.3], np.float32))
    e = sedc.explain(ONES, model, relabelled, mode=zeros_fill)
    # label 7 now joins first with the tied priority, so its child {7, 99} is the answer
    assert e.segments == [7, 99]


def test_targeted_search_by_hand():
    # Target class 2; priority is score_t - score_c.
    # singles: {0} [.7,.4,.1] (pr -.6), {1} [.9,0,.3] (pr -.6), {2} [1,0,.35], {3} [1,0,0]: no target.
    # {0} and {1} tie, {0} joined first: {0,1} [.6,.4,.4] (pr -.2) is the best child.
    # children of {0,1}: {0,1,2} [.6,.4,.75] predicts the target; {0,1,3} does not.
    weights = [[-0.3, 0.4, 0.1], [-0.1, 0.0, 0.3], [0.0, 0.0, 0.35], [0.0, 0.0, 0.0]]
    e, model = run(weights, [1.0, 0.0, 0.0], target=2)
    assert e.found and e.segments == [0, 1, 2] and e.new_class == 2 and e.target == 2
    assert e.new_score == pytest.approx(0.75)
    ref = reference.sedc_t(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(model), SEG, 2,
                           mode=np.zeros((8, 8, 1), np.float32))
    assert sorted(ref.segments_in_explanation) == e.segments and ref.new_class == 2


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
        e = sedc.explain(ones, model, seg, mode=zeros_fill, batch_size=4)
        sets = model.removed_sets()
        assert len(sets) == len(set(sets)) == e.n_evaluations
        ref = reference.sedc(np.ones((12, 12, 1), np.float32),
                             reference.TorchPredictor(RegionModel(seg, weights, base, pairs)), seg,
                             np.zeros((12, 12, 1), np.float32), max_evals=800)
        assert e.found == ref.found
        assert e.segments == sorted(ref.segments_in_explanation)
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
    assert (e.segments, e.new_class, e.n_evaluations) == (expected.segments, expected.new_class,
                                                         expected.n_evaluations)


def test_exhausted_when_nothing_changes_the_class():
    e, model = run(np.zeros((4, 2)), [1.0, 0.0])
    assert not e.found and e.stop_reason == "exhausted"
    assert e.n_evaluations == 2 ** 4  # every non-empty subset once, plus the unperturbed image
    assert e.segments == [] and e.new_class == e.original_class and not e.mask.any()
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
    assert e.segments == [0, 1, 2]
    pruned, _ = run(weights, [1.0, 0.5], prune=True)
    assert pruned.found and pruned.segments == [1, 2] and pruned.new_class == 1
    assert pruned.n_evaluations == e.n_evaluations + 1  # {1,2}; {0,1} and {0,2} were known


def test_search_state_machine_accepts_partial_feeds():
    search = Search(3, original_class=0, original_score=1.0)
    assert search.available() == 3
    first = search.take(2)
    search.feed(first[:1], Scores(np.array([0]), np.array([0.9]), np.array([0.9]), np.array([0.9])))
    assert not search.done and search.available() == 1
    with pytest.raises(RuntimeError, match="not taken"):
        search.feed(first, Scores(*(np.zeros(2),) * 4))
