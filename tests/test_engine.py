"""explain() (``sedc.core.engine``): input validation, the result's fields, and what explain
passes on (limits, pruning, seed, layout, default segmentation, timing), on small models.

The fills are tested in tests/test_perturbation.py, the seed API in tests/test_seed.py.
"""

from __future__ import annotations

import helpers.scoretable as tb
import numpy as np
import pytest
import torch
from helpers.images import coffee, grid_segments, zeros_fill
from helpers.models import AnyChangeFlips, RegionModel, SeededConvNet, quadrants
from helpers.scoretable import flip_on_segment_1

import sedc
from sedc.core.perturbation import random_fill_array
from sedc.imaging.segmentation import segment


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("image, error, match", [
    (np.zeros((3, 32, 32), np.float32), ValueError, "channels-first"),
    (np.zeros((2, 2, 2, 2), np.float32), ValueError, "accepted layouts"),
    (torch.zeros(2, 3, 8, 8), ValueError, "accepted layouts"),
    (np.full((8, 8, 3), 2.0, np.float32), ValueError, r"\[0, 1\]"),
    (np.array([[[np.nan] * 3] * 8] * 8, np.float32), ValueError, "NaN"),
    (torch.full((3, 8, 8), float("inf")), ValueError, "NaN or infinite"),
    ([[0.0]], TypeError, "image must be"),
])
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        sedc.explain(image, SeededConvNet(), np.zeros((8, 8), np.int64))


def test_segments_shape_must_match_the_image(coffee32):
    with pytest.raises(ValueError, match=r"segments has shape \(16, 16\) but the image is 32x32"):
        sedc.explain(coffee32, SeededConvNet(), np.zeros((16, 16), np.int64))


def test_segments_must_be_integer_labels(coffee32):
    with pytest.raises(ValueError, match="integer labels"):
        sedc.explain(coffee32, SeededConvNet(), np.full((32, 32), 0.5))
    with pytest.raises(TypeError, match="segments must be"):
        sedc.explain(coffee32, SeededConvNet(), [[0]])


def test_unknown_mode_lists_the_valid_ones(coffee32, seg32):
    with pytest.raises(ValueError, match=r"unknown mode 'gauss'.*'mean', 'blur', 'random', 'inpaint'"):
        sedc.explain(coffee32, SeededConvNet(), seg32, mode="gauss")


@pytest.mark.parametrize("bad, match", [
    (lambda x: x.mean(dim=(1, 2, 3)), r"scores of shape \(B, K\); got shape \(1,\)"),
    (lambda x: torch.zeros(x.shape[0] + 1, 4), "returned 2 rows of scores for a batch of 1"),
    (lambda x: [0.1, 0.9], "returned a list whose first element is float; expected a tensor"),
    (lambda x: torch.zeros(x.shape[0], 1), "at least 2 classes"),
])
def test_classifier_output_is_checked(coffee32, seg32, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sedc.explain(coffee32, bad, seg32)


def test_target_is_checked(coffee32, seg32):
    model = SeededConvNet()
    predicted = int(model(torch.from_numpy(coffee32).permute(2, 0, 1)[None]).argmax())
    with pytest.raises(ValueError, match=r"class index in 0\.\.4; got 7"):
        sedc.explain(coffee32, model, seg32, target=7)
    with pytest.raises(ValueError, match="already the predicted class"):
        sedc.explain(coffee32, model, seg32, target=predicted)
    with pytest.raises(ValueError, match=">= 0"):
        sedc.explain(coffee32, model, seg32, target=-1)
    with pytest.raises(TypeError, match="integer class index"):
        sedc.explain(coffee32, model, seg32, target="tabby")


@pytest.mark.parametrize("option, value, error", [
    ("max_time", 0, ValueError), ("max_time", -1.0, ValueError), ("max_time", "1", TypeError),
    ("max_evals", 0, ValueError), ("max_evals", 2.5, TypeError),
    ("batch_size", 0, ValueError), ("batch_size", "big", TypeError), ("batch_size", True, TypeError),
])
def test_limits_must_be_positive(coffee32, seg32, option, value, error):
    with pytest.raises(error, match=option):
        sedc.explain(coffee32, SeededConvNet(), seg32, **{option: value})


def test_device_mismatch_is_explained(coffee32, seg32):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        sedc.explain(coffee32, SeededConvNet(), seg32, device="cuda")


def test_validation_is_not_done_with_assert():
    import ast
    import pathlib

    root = pathlib.Path(sedc.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert root / "core" / "engine.py" in files and root / "scale" / "workers.py" in files
    for path in files:
        found = [node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path)))
                 if isinstance(node, ast.Assert)]
        assert not found, f"{path}: assert on line(s) {found} (python -O removes it)"


def test_target_equal_to_the_number_of_classes_is_refused():
    table = tb.table_from([1.0, 0.5], [[0.0, 0.0]] * 4)
    with pytest.raises(ValueError, match="target must be a class index in 0..1; got 2"):
        sedc.explain(tb.image(0, 4), tb.TableModel([table]), np.arange(4)[None], mode=tb.fill, target=2)


# ---------------------------------------------------------------------------- outputs
def test_explanation_fields_and_seed_tuple(coffee32, seg32):
    model = quadrants()
    e = sedc.explain(coffee32, model, seg32, mode="mean")
    assert e.found and e.stop_reason == "found" and e.removed == [0, 2, 3]
    assert e.original_class == 1 and e.new_class == 0
    assert e.image.shape == (1, 3, 32, 32) and e.perturbed_image.shape == (1, 3, 32, 32)
    # cells 0, 2 and 3 of the 4 x 4 grid of 8-pixel cells: the first, third and fourth of the top row
    hand = np.zeros((32, 32), bool)
    hand[:8, :8] = hand[:8, 16:] = True
    assert e.mask.dtype == bool
    np.testing.assert_array_equal(e.mask, hand)
    np.testing.assert_array_equal(e.explanation_image, np.where(hand[:, :, None], coffee32, 0))
    mean = torch.from_numpy(coffee32.reshape(-1, 3).mean(0))
    torch.testing.assert_close(e.perturbed_image[0][:, torch.from_numpy(hand)],
                               mean[:, None].expand(3, int(hand.sum())))
    assert torch.equal(e.perturbed_image[0][:, torch.from_numpy(~hand)], e.image[0][:, torch.from_numpy(~hand)])
    with torch.inference_mode():
        scores = model(e.perturbed_image)
    assert int(scores.argmax()) == e.new_class and float(scores[0, 0]) == pytest.approx(e.new_score)
    assert float(scores[0, 1]) == pytest.approx(e.original_class_score)
    d = e.to_dict()
    import json

    assert json.loads(json.dumps(d)) == d and d["n_segments_total"] == 16 and d["removed"] == [0, 2, 3]
    explanation, segments, perturbation, new_class, predicted = e.as_tuple()
    assert segments == [0, 2, 3] and new_class == 0 and predicted == 1
    np.testing.assert_array_equal(explanation, e.explanation_image)
    assert torch.equal(perturbation, e.perturbed_image)


def test_numpy_uint8_pil_and_tensor_inputs_agree(coffee32, seg4):
    from PIL import Image

    model = SeededConvNet()
    as_uint8 = (coffee32 * 255).round().astype(np.uint8)
    results = [sedc.explain(x, model, seg4, mode="mean") for x in (
        as_uint8, Image.fromarray(as_uint8), torch.from_numpy(as_uint8).permute(2, 0, 1),
        torch.from_numpy(as_uint8.astype(np.float32) / 255).permute(2, 0, 1))]
    assert len({(tuple(r.removed), r.new_class, r.n_evaluations) for r in results}) == 1
    for r in results[1:]:  # the same pixels, channels in the same order
        assert torch.equal(r.image, results[0].image)


def test_logits_are_used_as_returned():
    # Logits with a large gap: softmax is never applied by the search (SEDC.md).
    seg = grid_segments(2, 2)
    model = RegionModel(seg, np.array([[-30, 0], [-30, 0], [0, 0], [0, 0]], np.float32),
                        np.array([50.0, 0.0], np.float32))
    e = sedc.explain(torch.ones(1, 1, 8, 8), model, seg, mode=zeros_fill)
    assert e.original_score == 50.0 and e.removed == [0, 1] and e.new_score == 0.0


# ---------------------------------------------------------------------------- limits, options and defaults
def test_a_generous_max_time_changes_nothing():
    table = tb.table_from([1.0, 0.5], [[-0.25, -0.25], [-0.125, 0.25], [-0.125, 0.25], [0.0, 0.0]])
    seg = np.arange(4)[None]
    e = sedc.explain(tb.image(0, 4), tb.TableModel([table]), seg, mode=tb.fill, max_time=3600.0)
    assert (e.removed, e.found, e.stop_reason, e.n_evaluations) == ([0, 1, 2], True, "found", 10)


def test_a_limit_reached_while_pruning_keeps_the_search_answer():
    # singles {0} (.75, .25), {1} and {2} (.875, .75), {3} (1, .5); {0} expands first, then {0,1};
    # {0,1,2} (.5, .75) flips after 10 evaluations. Pruning evaluates {1,2} (.75, 1): it flips too.
    table = tb.table_from([1.0, 0.5], [[-0.25, -0.25], [-0.125, 0.25], [-0.125, 0.25], [0.0, 0.0]])
    seg = np.arange(4)[None]

    def run(**options):
        return sedc.explain(tb.image(0, 4), tb.TableModel([table]), seg, mode=tb.fill, prune=True, **options)

    assert (run().removed, run().n_evaluations) == ([1, 2], 11)
    for batch_size in (1, 4):
        e = run(max_evals=10, batch_size=batch_size)  # the budget ends with the search: no pruning
        assert (e.removed, e.found, e.stop_reason, e.n_evaluations) == ([0, 1, 2], True, "found", 10)


class SlowTable(tb.TableModel):
    """A score table that takes 10 ms per model call."""

    def forward(self, x):
        import time

        time.sleep(0.01)
        return super().forward(x)


def test_elapsed_and_segmentation_of_the_result():
    import time

    table = tb.table_from([1.0, 0.5], [[-0.25, -0.25], [-0.125, 0.25], [-0.125, 0.25], [0.0, 0.0]])
    seg = np.array([[7, 3, 5, 9]])
    start = time.perf_counter()
    e = sedc.explain(tb.image(0, 4), SlowTable([table]), seg, mode=tb.fill, batch_size=1)
    wall = time.perf_counter() - start
    assert e.n_evaluations == 10
    assert 0.009 * 9 <= e.elapsed <= wall  # the nine search evaluations, not the first image's
    np.testing.assert_array_equal(e.segmentation, seg)


def test_explain_random_fill_uses_seed_0_by_default_and_float32_outputs():
    table = tb.table_from([1.0, 0.5], [[-0.25, -0.25], [-0.125, 0.25], [-0.125, 0.25], [0.0, 0.0]])
    seg = np.arange(4)[None]
    e = sedc.explain(tb.image(0, 4), AnyChangeFlips(), seg, mode="random")
    noise = random_fill_array(1, 4, 2, 0)
    assert e.removed == [0]
    np.testing.assert_array_equal(e.perturbed_image[0, :, 0, 0].numpy(), noise[0, 0])
    assert e.explanation_image.dtype == np.float32
    assert sedc.explain(tb.image(0, 4), tb.TableModel([table]), seg, mode=tb.fill).explanation_image.dtype == np.float32


def test_explain_passes_seed_and_channels_last_on():
    image = torch.ones(1, 2, 2, 2)
    seg = np.arange(4).reshape(2, 2)
    e = sedc.explain(image, AnyChangeFlips(conv=True), seg, mode="random", seed=5)
    np.testing.assert_array_equal(e.perturbed_image[0, :, 0, 0].numpy(), random_fill_array(2, 2, 2, 5)[0, 0])
    for option, conv, want in (("auto", True, True), ("auto", False, False), (True, False, True),
                               (False, True, False)):
        model = AnyChangeFlips(conv)
        sedc.explain(image, model, seg, mode="mean", channels_last=option, batch_size=4)
        assert model.layouts and set(model.layouts) == {want}, (option, model.layouts)


def test_no_segments_means_the_papers_quickshift_and_mode_names():
    photo = coffee(32, 32)
    model = flip_on_segment_1()  # any model: only the segmentation and the mode's name matter here

    def first_channels(x):
        return model(torch.cat([x[:, :1], torch.zeros_like(x[:, :1])], 1)[:, :, :1, :6])

    e = sedc.explain(photo, first_channels, None, mode="mean", max_evals=2)
    np.testing.assert_array_equal(e.segmentation, segment(photo, "quickshift"))
    assert e.mode == "mean"
    assert sedc.explain(photo, first_channels, None, mode=lambda image, seg: image * 0, max_evals=2).mode == "custom"
