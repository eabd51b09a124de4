"""Tests written to kill mutants that survived ``make mutation`` (docs/mutation.md).

Each test names what it pins down; the answers are computed by hand on the score tables of
tests/scoretable.py (one pixel row, one model, exact multiples of 1/8).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sedc
from sedc.core.perturbation import random_fill_array

import scoretable as tb

SEG3 = np.array([[0, 0, 1, 1, 2, 2]], dtype=np.int64)  # three segments of two pixels


def flip_on_segment_1() -> tb.TableModel:
    """Removing segment 1 (pixels 2, 3) moves class 1 from 0.5 to 1.5 over class 0's 1.0."""
    return tb.TableModel([tb.table_from([1.0, 0.5], [[0, 0], [0, 0], [0, 0.5], [0, 0.5], [0, 0], [0, 0]])])


# ---------------------------------------------------------------------------- compat.py
def test_compat_helpers_by_hand():
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
