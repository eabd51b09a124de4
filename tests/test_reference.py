"""The oracle (``sedc.reference``, the port of the original search): its defaults and
pass-through options, its limits, its tie rules and priorities worked by hand on score tables
(tests/helpers/scoretable.py), its fills against the engine's, and ``TorchPredictor``.

The reference's answers on the hand-computed models of the search tests sit beside those tests
(tests/test_search.py); on real photos, in tests/test_equivalence.py.
"""

from __future__ import annotations

import helpers.scoretable as tb
import numpy as np
import pytest
import torch
from helpers.images import coffee
from helpers.models import ChangedIsClass1

import sedc
from sedc import reference
from sedc.core.perturbation import gaussian_blur, make_fill, random_fill_array


def test_reference_defaults_and_pass_through():
    ones = np.ones((8, 8, 1), np.float32)
    ones[0, 0] = 0.5  # blur must change something
    seg = np.kron(np.arange(4).reshape(2, 2), np.ones((4, 4), np.int64))
    predictor = reference.TorchPredictor(ChangedIsClass1(ones))
    assert predictor.n_calls == 0 and predictor.model_time == 0.0 and predictor.device == torch.device("cpu")
    for search, extra in ((reference.sedc, ()), (reference.sedc_t, (1,))):
        # default mode is blur: the first segment, filled with the blurred image
        ref = search(ones, reference.TorchPredictor(ChangedIsClass1(ones)), seg, *extra)
        blurred = gaussian_blur(torch.from_numpy(ones).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        assert ref.found and ref.segments_in_explanation == [0]
        np.testing.assert_allclose(ref.perturbation[:4, :4], blurred[:4, :4], atol=1e-6)
        # random: seed 0 by default, and the seed given is used
        for seed in (None, 5):
            kwargs = {} if seed is None else {"seed": seed}
            ref = search(np.ones((8, 8, 1), np.float32), reference.TorchPredictor(ChangedIsClass1(ones * 0 + 1)), seg,
                         *extra, mode="random", **kwargs)
            noise = random_fill_array(8, 8, 1, seed or 0)
            np.testing.assert_array_equal(ref.perturbation[:4, :4], noise[:4, :4])
        # max_evals is passed on
        never = reference.TorchPredictor(lambda x: torch.tensor([[1.0, 0.0, 0.0]] * len(x)))
        ref = search(np.ones((8, 8, 1), np.float32), never, seg, *(extra and (2,)), mode="mean", max_evals=3)
        assert ref.n_evaluations == 3 == never.n_calls and ref.stop_reason == "max_evals" and not ref.found


def test_reference_max_evals_inside_an_expansion():
    seg = np.kron(np.arange(4).reshape(2, 2), np.ones((4, 4), np.int64))
    for max_evals in (3, 5, 7):  # in step 1, at its end, inside the first expansion
        never = reference.TorchPredictor(lambda x: torch.tensor([[1.0, 0.0]] * len(x)))
        ref = reference.sedc(np.ones((8, 8, 1), np.float32), never, seg, "mean", max_evals=max_evals)
        assert (ref.found, ref.stop_reason, ref.n_evaluations, never.n_calls) == (False, "max_evals", max_evals,
                                                                                 max_evals)
        assert ref.explanation.shape == (8, 8, 1) and not ref.explanation.any() and ref.segments_in_explanation == []
        np.testing.assert_array_equal(ref.perturbation, np.ones((8, 8, 1), np.float32))


def test_reference_targeted_priority_by_hand():
    # SEDC-T toward class 2 from class 0 (base 1, .5, .25). Singles, as (scores; priority t - c):
    # {0} (.5, .625, .125; -.375)  {1} (.875, .25, .75; -.125)  {2} (.75, .25, .5; -.25)
    # {3} (1.25, .625, .5; -.75): no target; {1} has the highest priority. Its children: {0,1}
    # (.375, .375, .625) and {1,2} (.625, 0, 1) reach class 2, {1,3} does not; {1,2} has the higher
    # class-2 score. Expanding {0} instead (first joined) would answer {0, 1}.
    weights = [[-0.5, 0.125, -0.125], [-0.125, -0.25, 0.5], [-0.25, -0.25, 0.25], [0.25, 0.125, 0.25]]
    table = tb.table_from([1.0, 0.5, 0.25], weights)
    seg = np.arange(4)[None]
    ref = reference.sedc_t(tb.image_hwc(0, 4), reference.TorchPredictor(tb.TableModel([table])), seg, 2,
                           tb.fill_hwc(0, 4))
    assert (ref.found, sorted(ref.segments_in_explanation), ref.new_class, ref.n_evaluations) == (True, [1, 2], 2, 8)
    e = sedc.explain(tb.image(0, 4), tb.TableModel([table]), seg, mode=tb.fill, target=2)
    assert (e.removed, e.new_score, e.n_evaluations) == ([1, 2], 1.0, 8)


def test_reference_tie_rule_on_its_own():
    # The oracle's own tie rule, checked against the engine's answer on a table with ties
    # (found by comparing the two; the engine's tie rule is pinned by the hand tests of test_search.py).
    weights = [[-0.125, -0.125, -0.125], [-0.125, -0.5, 0.5], [0.125, 0.5, 0.5], [-0.25, -0.25, -0.25]]
    table = tb.table_from([1.0, 0.5, 0.25], weights)
    seg = np.arange(4)[None]
    e = sedc.explain(tb.image(0, 4), tb.TableModel([table]), seg, mode=tb.fill, batch_size=1)
    ref = reference.sedc(tb.image_hwc(0, 4), reference.TorchPredictor(tb.TableModel([table])), seg, tb.fill_hwc(0, 4))
    assert e.removed == sorted(ref.segments_in_explanation) == [0, 1, 2, 3] and e.n_evaluations == 11


@pytest.mark.parametrize("mode", ["mean", "blur", "random", "inpaint", "inpaint_telea", "harmonic", "callable",
                                  "array"])
def test_reference_fills_equal_the_engines(mode):
    """reference.perturbed_image (numpy / OpenCV, as the original) against make_fill (torch)."""
    photo = coffee(24, 20)
    image = torch.from_numpy(photo).permute(2, 0, 1)[None]
    seg = np.kron(np.arange(12).reshape(4, 3), np.ones((6, 7), np.int64))[:24, :20] * 2 + 1
    seen = []

    def by_segment(img, segments):  # a callable fill that needs the segments (torch or numpy)
        seen.append(type(img))
        labels = segments if isinstance(segments, np.ndarray) else segments.cpu().numpy()
        value = (labels % 5 / 5.0).astype(np.float32)
        if isinstance(img, torch.Tensor):
            return torch.from_numpy(value[None].repeat(3, 0)[None])
        return value[:, :, None].repeat(3, 2)

    given = {"callable": by_segment, "array": photo[::-1].copy()}.get(mode, mode)
    want = make_fill(image, torch.from_numpy(seg), given, seed=4)[0].permute(1, 2, 0).numpy()
    got = reference.fill_image(photo, seg, given, seed=4)
    assert got.shape == photo.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-5 if mode == "harmonic" else 1e-6)
    if mode == "random":
        assert not np.allclose(got, reference.fill_image(photo, seg, "random"))  # seed 0 differs
        np.testing.assert_array_equal(reference.fill_image(photo, seg, "random"), random_fill_array(24, 20, 3, 0))
    if mode == "callable":
        assert seen == [torch.Tensor, np.ndarray]
    gray = reference.fill_image(photo[:, :, :1], seg, given if mode != "array" else photo[::-1, :, :1].copy(),
                                     seed=4) if mode not in ("callable",) else None
    if gray is not None:
        assert gray.shape == (24, 20, 1)


def test_reference_fill_arrays_and_callables_are_float32_of_the_image_shape():
    photo = coffee(8, 6)[:, :, :1]  # one channel: (8, 6, 1)
    seg = np.zeros((8, 6), np.int64)
    flat = np.linspace(0, 1, 48).reshape(8, 6)  # float64, (H, W): reshaped to (H, W, 1)
    for mode in (flat, lambda image, segments: flat):
        fill = reference.fill_image(photo, seg, mode)
        assert fill.shape == (8, 6, 1) and fill.dtype == np.float32
        np.testing.assert_array_equal(fill[:, :, 0], flat.astype(np.float32))


def test_reference_unknown_mode_and_float64_images():
    with pytest.raises(ValueError, match="unknown mode 'sharpen'"):
        reference.fill_image(np.ones((4, 4, 3), np.float32), np.zeros((4, 4), np.int64), "sharpen")
    ones = np.ones((8, 8, 1))  # float64: the reference works in float32 as the original does
    seg = np.kron(np.arange(4).reshape(2, 2), np.ones((4, 4), np.int64))
    seen = []

    def zeros_by_segment(img, segments):
        seen.append((img.dtype, segments.shape))
        return np.zeros_like(img)

    ref = reference.sedc(ones, reference.TorchPredictor(ChangedIsClass1(ones.astype(np.float32))), seg,
                         mode=zeros_by_segment)
    assert seen == [(np.float32, (8, 8))]
    assert ref.found and ref.explanation.dtype == np.float32 and ref.perturbation.dtype == np.float32


def test_torch_predictor_takes_float64_batches():
    seen = []
    predictor = reference.TorchPredictor(lambda x: seen.append(x.dtype) or torch.zeros(len(x), 2))
    scores = predictor.predict(np.ones((1, 4, 4, 3), np.float64))
    assert seen == [torch.float32] and scores.dtype == np.float32 and predictor.n_calls == 1
    assert 0 < predictor.model_time < 60


def test_torch_predictor_adds_up_model_time():
    import time

    def slow_then_fast(x, calls=[]):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.05)
        return torch.zeros(len(x), 2)

    predictor = reference.TorchPredictor(slow_then_fast)
    start = time.perf_counter()
    predictor.predict(np.ones((1, 2, 2, 1), np.float32))
    predictor.predict(np.ones((1, 2, 2, 1), np.float32))
    wall = time.perf_counter() - start
    assert predictor.n_calls == 2 and 0.05 <= predictor.model_time <= wall
