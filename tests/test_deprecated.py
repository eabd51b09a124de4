"""Names renamed in 0.2 keep working for one release, each with a DeprecationWarning that names
the new one (docs/architecture.md, "Words"); the new names give no warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers.images import grid_segments, zeros_fill
from helpers.models import RegionModel

import sedc

SEGMENTATION = grid_segments(2, 2)
WEIGHTS = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)


def model() -> RegionModel:
    """Class 0 until cells 0 and 2 are both removed (then class 1 or 2 ties go to 1)."""
    return RegionModel(SEGMENTATION, WEIGHTS, np.array([1.5, 0.0, -1.0], np.float32))


def explanation() -> sedc.Explanation:
    return sedc.explain(torch.ones(1, 1, 8, 8), model(), SEGMENTATION, mode=zeros_fill)


def test_segments_keyword_of_explain_and_explain_many():
    image, segmentation = torch.ones(1, 1, 8, 8), SEGMENTATION
    want = sedc.explain(image, model(), segmentation, mode=zeros_fill)
    with pytest.warns(DeprecationWarning, match="segments= argument is now segmentation="):
        old = sedc.explain(image, model(), segments=segmentation, mode=zeros_fill)
    assert old.removed == want.removed
    with pytest.warns(DeprecationWarning, match="segmentation="):
        many = sedc.explain_many([image], model(), segments=segmentation, mode=zeros_fill)
    assert many[0].removed == want.removed
    with pytest.raises(sedc.InputTypeError, match="segmentation= only"):
        with pytest.warns(DeprecationWarning):
            sedc.explain(image, model(), segmentation, segments=segmentation, mode=zeros_fill)


def test_explanation_segments_is_removed():
    e = explanation()
    with pytest.warns(DeprecationWarning, match="Explanation.segments is now Explanation.removed"):
        assert e.segments == e.removed


def test_loaded_model_labels_and_plot_labels(tmp_path):
    loaded = sedc.models.LoadedModel(model(), ["a", "b", "c"], 8, "region")
    with pytest.warns(DeprecationWarning, match="LoadedModel.labels is now LoadedModel.class_names"):
        assert loaded.labels == ["a", "b", "c"]
    with pytest.warns(DeprecationWarning, match="labels= argument is now class_names="):
        sedc.plot(explanation(), labels=["a", "b", "c"])


def test_reference_perturbed_image_is_fill_image():
    image, segmentation = np.ones((4, 4, 3), np.float32), np.zeros((4, 4), np.int64)
    with pytest.warns(DeprecationWarning, match="fill_image"):
        old = sedc.reference.perturbed_image(image, segmentation, "mean")
    np.testing.assert_array_equal(old, sedc.reference.fill_image(image, segmentation, "mean"))


def test_new_names_warn_nothing(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        e = sedc.explain(torch.ones(1, 1, 8, 8), model(), segmentation=SEGMENTATION, mode=zeros_fill)
        assert e.removed and e.to_dict()["removed"] == e.removed
        e.plot(["a", "b", "c"], path=tmp_path / "e.png")


def test_labels_flag_is_class_names_with_a_note(capsys):
    from sedc.cli.main import build_parser

    args = build_parser().parse_args(["explain", "x.png", "--labels", "imagenet"])
    assert args.class_names == "imagenet"
    assert "--labels is now --class-names" in capsys.readouterr().err
    args = build_parser().parse_args(["explain", "x.png", "--class-names", "imagenet"])
    assert args.class_names == "imagenet" and capsys.readouterr().err == ""
