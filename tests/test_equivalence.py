"""The fast paths return the reference's counterfactual on real photos with the real model.

The reference (:mod:`sedc.core.reference`, the original one-image-at-a-time numpy search) is the
oracle: same segments, same new class, and never more model evaluations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sedc
from sedc.core import reference

from conftest import PHOTOS

pytestmark = pytest.mark.slow

CHEAP = ("rocket", "astronaut")  # few evaluations: also run the one-candidate-per-call path


@pytest.mark.parametrize("mode", ["mean", "blur"])
@pytest.mark.parametrize("name", PHOTOS)
def test_explain_and_batch_api_match_the_reference(real_model, photos, oracle, name, mode):
    image, segments = photos[name]
    ref = oracle(name, mode)
    assert ref.found, f"the reference found no counterfactual for {name}/{mode}"
    e = sedc.explain(image, real_model.module, segments, mode=mode)
    assert e.found and e.stop_reason == "found"
    assert e.segments == sorted(ref.segments_in_explanation)
    assert e.new_class == ref.new_class and e.original_class == ref.predicted_class_index
    assert e.n_evaluations <= ref.n_evaluations
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    batch = sedc.sedc_pytorch_batch(tensor, real_model.module, segments, mode, torch.device("cpu"), batch_size=8)
    assert sorted(batch[1]) == e.segments and batch[3] == e.new_class and batch[4] == e.original_class
    if name in CHEAP:
        single = sedc.sedc_pytorch(tensor, real_model.module, segments, mode, torch.device("cpu"))
        assert sorted(single[1]) == e.segments and single[3] == e.new_class


def test_counterfactual_really_changes_the_class(real_model, photos):
    image, segments = photos["coffee"]
    e = sedc.explain(image, real_model.module, segments, mode="blur")
    with torch.inference_mode():
        scores = real_model.module(e.perturbed_image)
    assert int(scores.argmax()) == e.new_class != e.original_class
    assert float(scores[0, e.new_class]) == pytest.approx(e.new_score, abs=1e-4)
    # putting back the removed segments restores the original prediction
    with torch.inference_mode():
        assert int(real_model.module(e.image).argmax()) == e.original_class


def test_targeted_search_reaches_the_requested_class(real_model, photos):
    image, segments = photos["chelsea"]
    tabby = sedc.models.resolve_class("tabby", real_model.labels)
    e = sedc.explain(image, real_model.module, segments, mode="blur", target=tabby)
    assert real_model.labels[e.original_class] == "Egyptian cat"
    assert e.found and e.new_class == tabby and e.target == tabby
    ref = reference.sedc_t(image, reference.TorchPredictor(real_model.module), segments, tabby, "blur")
    assert e.segments == sorted(ref.segments_in_explanation) and ref.new_class == tabby
    assert e.n_evaluations <= ref.n_evaluations


def test_default_segmentation_is_the_papers_quickshift(real_model, photos):
    image, segments = photos["astronaut"]
    a = sedc.explain(image, real_model.module, mode="mean")
    b = sedc.explain(image, real_model.module, segments, mode="mean")
    assert np.array_equal(a.segmentation, segments) and a.segments == b.segments


def test_prune_gives_an_irreducible_counterfactual(real_model, photos):
    image, segments = photos["coffee"]
    e = sedc.explain(image, real_model.module, segments, mode="blur", prune=True)
    assert e.found
    with torch.inference_mode():
        for label in e.segments:
            fewer = [s for s in e.segments if s != label]
            if not fewer:
                continue
            fill = sedc.create_perturbation_mask(image, segments, "blur")
            candidate = sedc.create_perturbed_image(image, fill, segments, fewer)
            assert int(real_model.module(candidate).argmax()) == e.original_class


def test_harmonic_inpainting_mode_runs_on_a_real_photo(real_model, photos):
    image, segments = photos["astronaut"]
    e = sedc.explain(image, real_model.module, segments, mode="harmonic", max_evals=200)
    assert e.n_evaluations <= 200 and e.stop_reason in ("found", "exhausted", "max_evals")
