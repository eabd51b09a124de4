"""The seed API (``sedc.core.seed``): ``sedc_pytorch``, ``sedc_pytorch_batch`` and the
``create_*`` helpers, against explain and by hand (score tables of tests/helpers/scoretable.py)."""

from __future__ import annotations

import helpers.scoretable as tb
import numpy as np
import pytest
import torch
from helpers.images import coffee, grid_segments, zeros_fill
from helpers.models import RegionModel, quadrants
from helpers.scoretable import SEG3, flip_on_segment_1

import sedc
from sedc.core.perturbation import make_fill, random_fill_array


def test_seed_api_matches_explain(coffee32, seg4):
    # Quadrant 1 filled with the image mean (3.87) falls below quadrant 0 (4.10): [1] flips to 0.
    # Noise (mean about 0.5) keeps quadrant 1 on top until quadrant 0 is filled too: [0, 1].
    # The random fill gives another perturbed image: a seed function that ignored mode would differ.
    model = quadrants()
    image = torch.from_numpy(coffee32).permute(2, 0, 1)[None]
    for mode, answer in (("mean", [1]), ("random", [0, 1])):
        e = sedc.explain(image, model, seg4, mode=mode)
        assert e.found and e.removed == answer and e.new_class == 0 and e.original_class == 1
        single = sedc.sedc_pytorch(image, model, seg4, mode, torch.device("cpu"))
        batch = sedc.sedc_pytorch_batch(image, model, seg4, mode, torch.device("cpu"), batch_size=8)
        for result in (single, batch):
            assert result[1] == e.removed and result[3] == e.new_class and result[4] == e.original_class
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


def test_seed_helpers_by_hand():
    image = tb.image(3)  # channel 1 is 3/8 everywhere
    fill = sedc.create_perturbation_mask(image, SEG3, "mean")
    torch.testing.assert_close(fill, image, rtol=0, atol=0)  # the mean of a constant image
    noise = sedc.create_perturbation_mask(image, SEG3, "random", seed=3)
    np.testing.assert_array_equal(noise[0].permute(1, 2, 0).numpy(), random_fill_array(1, 6, 2, 3))
    black = tb.fill(image)
    for given in (black, black[0]):  # (1, C, H, W) and (C, H, W) fills
        perturbed = sedc.create_perturbed_image(image, given, SEG3, [1])
        assert perturbed.shape == (1, 2, 1, 6)
        np.testing.assert_array_equal(perturbed[0, 0, 0].numpy(), [1, 1, 0, 0, 1, 1])
        np.testing.assert_array_equal(perturbed[0, 1, 0].numpy(), [3 / 8] * 6)
    with pytest.raises(ValueError, match="the fill has shape"):
        sedc.create_perturbed_image(image, torch.zeros(1, 2, 1, 5), SEG3, [1])
    # the segments reach the fill (harmonic and inpainting fills need them)
    photo = torch.from_numpy(coffee(8, 12)).permute(2, 0, 1)[None]
    seg = np.kron(np.arange(6).reshape(2, 3), np.ones((4, 4), np.int64))
    torch.testing.assert_close(sedc.create_perturbation_mask(photo, seg, "harmonic"),
                               make_fill(photo, torch.from_numpy(seg), "harmonic"))
    mask = sedc.create_explanation_mask(image, SEG3, [1, 2])
    assert mask.shape == (1, 6, 2)
    np.testing.assert_array_equal(mask[0], [[0, 0], [0, 0], [1, 3 / 8], [1, 3 / 8], [1, 3 / 8], [1, 3 / 8]])


@pytest.mark.parametrize("api", ["sedc_pytorch", "sedc_pytorch_batch"])
def test_seed_api_by_hand_uses_its_mode_and_batch_size(api):
    model = flip_on_segment_1()
    kwargs = {"batch_size": 2} if api == "sedc_pytorch_batch" else {}
    explanation, segments, perturbation, new_class, original = getattr(sedc, api)(
        tb.image(), model, SEG3, tb.fill, torch.device("cpu"), **kwargs)
    assert (segments, new_class, original) == ([1], 1, 0)
    np.testing.assert_array_equal(explanation[0, :, 0], [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(perturbation[0, 0, 0].numpy(), [1, 1, 0, 0, 1, 1])
    assert model.batches == ([1, 2, 1] if kwargs else [1, 1, 1, 1])  # image, then {0},{1} | {2} or one by one
    # the default mode is "mean": on this all-ones image it removes nothing, so nothing is found
    _, segments, _, new_class, original = getattr(sedc, api)(tb.image(), flip_on_segment_1(), SEG3)
    assert (segments, new_class, original) == ([], 0, 0)


def test_seed_defaults_mode_mean_seed_0_and_batch_size_8():
    image = tb.image(3)
    torch.testing.assert_close(sedc.create_perturbation_mask(image, SEG3), image, rtol=0, atol=0)
    np.testing.assert_array_equal(sedc.create_perturbation_mask(image, SEG3, "random")[0].permute(1, 2, 0).numpy(),
                                  random_fill_array(1, 6, 2, 0))
    # nine segments, nothing flips: step 1 has 9 candidates (batches 5 + 4), the next steps 8 each
    seg = grid_segments(3, 3)
    model = RegionModel(seg, np.zeros((9, 2), np.float32), np.array([1.0, 0.0], np.float32))
    _, segments, _, new_class, original = sedc.sedc_pytorch_batch(torch.ones(1, 1, 12, 12), model, seg, zeros_fill)
    sizes = [len(batch) for batch in model.calls]
    assert (segments, new_class, original) == ([], 0, 0)
    assert sizes[:3] == [1, 5, 4] and max(sizes) == 8 and 8 in sizes
