"""explain(): input validation, fills, outputs, and the seed API, on small models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from helpers.images import grid_segments, zeros_fill
from helpers.models import RegionModel, SeededConvNet, quadrants

import sedc
from sedc.core.perturbation import gaussian_blur, make_fill
from sedc.imaging.samples import sample_photo


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


# ---------------------------------------------------------------------------- fills
def test_blur_equals_opencv():
    image = sample_photo("chelsea", 224)
    ours = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    theirs = cv2.GaussianBlur(image, (31, 31), 0)
    assert np.abs(ours - theirs).max() < 1e-5


def test_blur_of_an_image_smaller_than_the_kernel_equals_opencv():
    image = np.random.default_rng(0).random((10, 12, 3), dtype=np.float32)
    ours = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - cv2.GaussianBlur(image, (31, 31), 0)).max() < 1e-5


@pytest.mark.parametrize("mode", sedc.MODES)
def test_each_fill_has_the_right_shape_dtype_device_and_range(coffee32, seg32, mode):
    image = torch.from_numpy(coffee32).permute(2, 0, 1)[None]
    fill = make_fill(image, torch.from_numpy(seg32), mode)
    assert fill.shape == image.shape and fill.dtype == torch.float32 and fill.device == image.device
    assert torch.isfinite(fill).all() and fill.min() >= 0 and fill.max() <= 1
    assert not torch.equal(fill, image)


@pytest.mark.parametrize("mode, tolerance", [("mean", 1e-6), ("blur", 1e-5), ("random", 0), ("inpaint", 0),
                                             ("inpaint_telea", 0)])
def test_fills_equal_the_references_own(mode, tolerance):
    # The reference computes its fills itself (the original's code): two implementations agree.
    from sedc import reference

    image = sample_photo("chelsea", 48)
    segments = grid_segments(6, 6, cell=8) * 3 + 5  # sparse labels
    ours = make_fill(torch.from_numpy(image).permute(2, 0, 1)[None], torch.from_numpy(segments), mode, seed=7)
    theirs = reference.fill_image(image, segments, mode, seed=7).astype(np.float32)
    np.testing.assert_allclose(ours[0].permute(1, 2, 0).numpy(), theirs, rtol=0, atol=tolerance)


def test_mean_fill_is_the_per_channel_mean(coffee32, seg32):
    image = torch.from_numpy(coffee32).permute(2, 0, 1)[None]
    fill = make_fill(image, torch.from_numpy(seg32), "mean")
    assert torch.allclose(fill[0, :, 5, 7], torch.from_numpy(coffee32.reshape(-1, 3).mean(0)), atol=1e-6)


def test_random_fill_is_reproducible_with_seed(coffee32, seg32):
    image = torch.from_numpy(coffee32).permute(2, 0, 1)[None]
    seg = torch.from_numpy(seg32)
    assert torch.equal(make_fill(image, seg, "random", seed=3), make_fill(image, seg, "random", seed=3))
    assert not torch.equal(make_fill(image, seg, "random", seed=3), make_fill(image, seg, "random", seed=4))
    a = sedc.explain(coffee32, SeededConvNet(), seg32, mode="random", seed=5, max_evals=100)
    b = sedc.explain(coffee32, SeededConvNet(), seg32, mode="random", seed=5, max_evals=100)
    assert torch.equal(a.perturbed_image, b.perturbed_image) and a.segments == b.segments


def test_custom_fill_callable_and_ready_fill(coffee32, seg32, seg4):
    seen = {}

    def dark(image, segments):
        seen["args"] = (image.shape, segments.shape)
        return torch.full_like(image, 0.2)

    # Quadrant 1 (5.38) filled with 0.2 scores 2.0, below quadrant 0 (4.10): one segment flips.
    a = sedc.explain(coffee32, quadrants(), seg4, mode=dark)
    assert seen["args"] == ((1, 3, 32, 32), (32, 32)) and a.mode == "custom"
    assert a.found and a.segments == [1] and a.new_class == 0 and a.n_evaluations == 5
    b = sedc.explain(coffee32, quadrants(), seg4, mode=np.full((32, 32, 3), 0.2, np.float32))
    assert a.segments == b.segments and a.n_evaluations == b.n_evaluations
    for e in (a, b):
        assert torch.equal(e.perturbed_image[0, :, :16, 16:], torch.full((3, 16, 16), 0.2))
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[:16, 16:] = False
        assert torch.equal(e.perturbed_image[0][:, outside], e.image[0][:, outside])
    with pytest.raises(ValueError, match=r"fill returned by bad\(\) has shape \(1, 3, 8, 8\)"):
        def bad(image, segments):
            return torch.zeros(1, 3, 8, 8)
        sedc.explain(coffee32, SeededConvNet(), seg32, mode=bad)


# ---------------------------------------------------------------------------- outputs
def test_explanation_fields_and_seed_tuple(coffee32, seg32):
    model = quadrants()
    e = sedc.explain(coffee32, model, seg32, mode="mean")
    assert e.found and e.stop_reason == "found" and e.segments == [0, 2, 3]
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

    assert json.loads(json.dumps(d)) == d and d["n_segments_total"] == 16 and d["segments"] == [0, 2, 3]
    explanation, segments, perturbation, new_class, predicted = e.as_tuple()
    assert segments == [0, 2, 3] and new_class == 0 and predicted == 1
    np.testing.assert_array_equal(explanation, e.explanation_image)
    assert torch.equal(perturbation, e.perturbed_image)


def test_seed_api_matches_explain(coffee32, seg4):
    # Quadrant 1 filled with the image mean (3.87) falls below quadrant 0 (4.10): [1] flips to 0.
    # Noise (mean about 0.5) keeps quadrant 1 on top until quadrant 0 is filled too: [0, 1].
    # The random fill gives another perturbed image: a seed function that ignored mode would differ.
    model = quadrants()
    image = torch.from_numpy(coffee32).permute(2, 0, 1)[None]
    for mode, answer in (("mean", [1]), ("random", [0, 1])):
        e = sedc.explain(image, model, seg4, mode=mode)
        assert e.found and e.segments == answer and e.new_class == 0 and e.original_class == 1
        single = sedc.sedc_pytorch(image, model, seg4, mode, torch.device("cpu"))
        batch = sedc.sedc_pytorch_batch(image, model, seg4, mode, torch.device("cpu"), batch_size=8)
        for result in (single, batch):
            assert result[1] == e.segments and result[3] == e.new_class and result[4] == e.original_class
            np.testing.assert_array_equal(result[0], e.explanation_image)
            assert torch.equal(result[2], e.perturbed_image)


def test_seed_helper_functions(coffee32, seg32):
    image = torch.from_numpy(coffee32).permute(2, 0, 1)[None]
    fill = sedc.create_perturbation_mask(image, seg32, "mean", torch.device("cpu"))
    perturbed = sedc.create_perturbed_image(image, fill, seg32, [0, 5])
    # cells 0 and 5 of the 4 x 4 grid of 8-pixel cells, by hand
    hand = np.zeros((32, 32), bool)
    hand[:8, :8] = hand[8:16, 8:16] = True
    inside = torch.from_numpy(hand)
    assert torch.equal(perturbed[0][:, inside], fill[0][:, inside])
    assert torch.equal(perturbed[0][:, ~inside], image[0][:, ~inside])
    mask = sedc.create_explanation_mask(image, seg32, [0, 5])
    assert mask.shape == (32, 32, 3)
    np.testing.assert_array_equal(mask, np.where(hand[:, :, None], coffee32, 0))


def test_numpy_uint8_pil_and_tensor_inputs_agree(coffee32, seg4):
    from PIL import Image

    model = SeededConvNet()
    as_uint8 = (coffee32 * 255).round().astype(np.uint8)
    results = [sedc.explain(x, model, seg4, mode="mean") for x in (
        as_uint8, Image.fromarray(as_uint8), torch.from_numpy(as_uint8).permute(2, 0, 1),
        torch.from_numpy(as_uint8.astype(np.float32) / 255).permute(2, 0, 1))]
    assert len({(tuple(r.segments), r.new_class, r.n_evaluations) for r in results}) == 1
    for r in results[1:]:  # the same pixels, channels in the same order
        assert torch.equal(r.image, results[0].image)


def test_logits_are_used_as_returned():
    # Logits with a large gap: softmax is never applied by the search (SEDC.md).
    seg = grid_segments(2, 2)
    model = RegionModel(seg, np.array([[-30, 0], [-30, 0], [0, 0], [0, 0]], np.float32),
                        np.array([50.0, 0.0], np.float32))
    e = sedc.explain(torch.ones(1, 1, 8, 8), model, seg, mode=zeros_fill)
    assert e.original_score == 50.0 and e.segments == [0, 1] and e.new_score == 0.0
