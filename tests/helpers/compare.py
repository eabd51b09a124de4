"""A many-image result against ``sedc.explain`` on that image alone (explain_many, Task, workers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sedc
from helpers.images import grid
from helpers.models import TinyNet


def alone(image, model=None, segments=None, **options) -> sedc.Explanation:
    """``sedc.explain`` on one image (default model :class:`~helpers.models.TinyNet`, segments
    :func:`~helpers.images.grid`)."""
    return sedc.explain(image, model or TinyNet(), grid() if segments is None else segments, **options)


def assert_same(got, want) -> None:
    """The search result of ``got`` (explain_many) equals ``want`` (explain)."""
    assert isinstance(got, sedc.Explanation), got
    assert got.removed == want.removed
    assert got.found == want.found
    assert got.original_class == want.original_class
    assert got.new_class == want.new_class
    assert got.n_evaluations == want.n_evaluations
    assert got.stop_reason == want.stop_reason
    assert got.n_segments == want.n_segments
    np.testing.assert_array_equal(got.mask, want.mask)
    np.testing.assert_array_equal(got.segmentation, want.segmentation)
    torch.testing.assert_close(got.perturbed_image, want.perturbed_image)
    assert got.new_score == pytest.approx(want.new_score, rel=1e-5, abs=1e-6)
