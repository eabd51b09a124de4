"""sedc.ExplainOptions: one options object, validated once, accepted by every entry point."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers.images import fail_loading, grid, tiny_image
from helpers.models import TinyNet

import sedc
from sedc import ExplainOptions, ImageError
from sedc.scale import explain_many


@pytest.mark.parametrize("name, value, error, match", [
    ("mode", "gauss", ValueError, "unknown mode 'gauss'"),
    ("mode", 3, TypeError, "mode must be one of"),
    ("target", -1, ValueError, "target must be a class index >= 0"),
    ("target", 2.0, TypeError, "target must be None or an integer"),
    ("batch_size", 0, ValueError, "batch_size must be 'auto' or a positive integer"),
    ("batch_size", "big", TypeError, "batch_size must be 'auto'"),
    ("max_time", -1.0, ValueError, "max_time must be a positive number"),
    ("max_evals", 2.5, TypeError, "max_evals must be a positive integer"),
    ("seed", "x", TypeError, "seed must be an integer"),
    ("prune", "yes", TypeError, "prune must be True or False"),
    ("channels_last", "maybe", TypeError, "channels_last must be True, False or 'auto'"),
    ("max_batch", 0, ValueError, "max_batch must be a positive integer"),
])
def test_each_setting_is_validated_with_a_message_naming_it(name, value, error, match):
    with pytest.raises(error, match=match):
        ExplainOptions(**{name: value})


def test_values_are_normalised():
    options = ExplainOptions(target=np.int64(3), max_time=2, max_evals=np.int32(9), prune=np.bool_(True))
    assert (options.target, options.max_time, options.max_evals, options.prune) == (3, 2.0, 9, True)
    assert type(options.target) is int and type(options.max_time) is float


def test_build_applies_overrides_and_refuses_unknown_names():
    base = ExplainOptions(mode="mean", max_evals=10)
    assert ExplainOptions.build(base, max_evals=20) == ExplainOptions(mode="mean", max_evals=20)
    assert ExplainOptions.build(base) is base
    with pytest.raises(TypeError, match=r"unknown option\(s\) max_eval; the options are mode, target"):
        ExplainOptions.build(base, max_eval=3)
    with pytest.raises(TypeError, match="options must be an ExplainOptions"):
        ExplainOptions.build({"mode": "mean"})


def test_frozen():
    with pytest.raises(AttributeError):
        ExplainOptions().mode = "mean"  # type: ignore[misc]


def test_explain_many_takes_the_object_or_keywords_alike():
    imgs = [tiny_image(k) for k in range(2)]
    by_object = explain_many(imgs, TinyNet(), grid(), options=ExplainOptions(mode="mean", max_evals=6))
    by_keywords = explain_many(imgs, TinyNet(), grid(), mode="mean", max_evals=6)
    assert [e.removed for e in by_object] == [e.removed for e in by_keywords]
    assert [e.n_evaluations for e in by_object] == [e.n_evaluations for e in by_keywords] == [6, 6]
    overridden = explain_many(imgs, TinyNet(), grid(), options=ExplainOptions(mode="mean", max_evals=6),
                              max_evals=4)
    assert [e.n_evaluations for e in overridden] == [4, 4]


def test_bad_option_fails_before_any_image_is_touched():
    calls = []

    def loader():
        calls.append(1)
        return tiny_image(0)

    with pytest.raises(ValueError, match="batch_size"):
        explain_many([loader], TinyNet(), grid(), batch_size=0)
    with pytest.raises(TypeError, match="unknown option"):
        explain_many([loader], TinyNet(), grid(), batch=4)
    assert calls == []


def test_worker_processes_raise_image_error_like_one_process():
    items = [tiny_image(0), functools.partial(fail_loading, "broken.png")]
    with pytest.raises(ImageError, match="broken.png") as caught:
        explain_many(items, TinyNet(), grid(), mode="mean", devices=["cpu"])
    assert caught.value.index == 1
    with pytest.raises(ImageError, match="broken.png"):
        explain_many(items, TinyNet(), grid(), mode="mean")


def test_explain_validates_through_the_same_object():
    with pytest.raises(ValueError, match="unknown mode"):
        sedc.explain(tiny_image(0), TinyNet(), grid(), mode="gauss")
