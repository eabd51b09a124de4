"""Tests for sedc.imaging.segmentation on a real photo (scikit-image's chelsea, 224x224)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data, transform

from sedc.imaging import segmentation
from sedc.imaging.segmentation import DEFAULT_PARAMS, METHODS, segment


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Chelsea the cat, float64 (224, 224, 3) in [0, 1]."""
    return transform.resize(data.chelsea(), (224, 224), anti_aliasing=True)


@pytest.fixture(scope="module")
def photo_uint8(photo: np.ndarray) -> np.ndarray:
    return np.round(photo * 255).astype(np.uint8)


def assert_label_map(labels: np.ndarray, shape: tuple[int, int]) -> int:
    """Check the output contract; return the number of segments."""
    assert labels.shape == shape
    assert labels.dtype == np.int64
    assert labels.flags.c_contiguous
    n = int(labels.max()) + 1
    assert labels.min() == 0
    np.testing.assert_array_equal(np.unique(labels), np.arange(n))
    return n


def test_quickshift_default_is_sedc_setting_and_deterministic(photo):
    first = segment(photo)
    n = assert_label_map(first, (224, 224))
    assert 10 <= n <= 200
    np.testing.assert_array_equal(first, segment(photo, "quickshift"))
    np.testing.assert_array_equal(first, segment(photo, "quickshift", kernel_size=4, max_dist=200, ratio=0.2))


@pytest.mark.parametrize("requested", [25, 50, 100])
def test_slic_gives_about_the_requested_number(photo, requested):
    n = assert_label_map(segment(photo, "slic", n_segments=requested), (224, 224))
    assert requested / 2 <= n <= requested * 2


def test_felzenszwalb_defaults(photo):
    n = assert_label_map(segment(photo, "felzenszwalb"), (224, 224))
    assert n > 1
    coarser = assert_label_map(segment(photo, "felzenszwalb", scale=1000, min_size=500), (224, 224))
    assert coarser < n


def cells_are_rectangles(labels: np.ndarray) -> bool:
    for label in np.unique(labels):
        rows, cols = np.nonzero(labels == label)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        if box != rows.size:
            return False
    return True


def test_grid_exact_rows_and_cols(photo):
    labels = segment(photo, "grid", rows=4, cols=5)
    assert assert_label_map(labels, (224, 224)) == 20
    assert cells_are_rectangles(labels)
    assert labels[0, 0] == 0 and labels[0, -1] == 4 and labels[-1, 0] == 15 and labels[-1, -1] == 19


@pytest.mark.parametrize(("params", "expected"), [
    ({}, 49), ({"n_segments": 12}, 12), ({"n_segments": 1}, 1), ({"n_segments": 64}, 64),
    ({"rows": 2, "n_segments": 10}, 10), ({"cols": 3, "n_segments": 9}, 9), ({"rows": 3, "cols": 3, "n_segments": 9}, 9),
])
def test_grid_counts(photo, params, expected):
    labels = segment(photo, "grid", **params)
    assert assert_label_map(labels, (224, 224)) == expected
    assert cells_are_rectangles(labels)


def test_grid_non_square_image_gets_near_square_cells():
    labels = segment(np.zeros((100, 400, 3)), "grid", n_segments=16)
    assert assert_label_map(labels, (100, 400)) == 16
    assert (labels[0] == labels[0, 0]).sum() == 50  # 2 rows x 8 cols of 50x50 cells


def test_grid_works_on_any_values_and_channels():
    normalised = torch.randn(5, 30, 40) * 3
    labels = segment(normalised, "grid", rows=3, cols=4)
    assert assert_label_map(labels, (30, 40)) == 12


def test_grid_single_pixel_rows():
    labels = segment(np.zeros((3, 5)), "grid", rows=3, cols=5)
    np.testing.assert_array_equal(labels, np.arange(15).reshape(3, 5))


@pytest.mark.parametrize("method", ["quickshift", "slic", "felzenszwalb", "grid"])
def test_tensor_uint8_float_and_pil_inputs_agree(photo_uint8, method):
    expected = segment(photo_uint8, method)
    as_float = photo_uint8.astype(np.float32) / 255
    inputs = [
        torch.from_numpy(photo_uint8).permute(2, 0, 1),  # uint8 tensor (C, H, W)
        torch.from_numpy(as_float).permute(2, 0, 1)[None],  # float tensor (1, C, H, W)
        as_float,
        Image.fromarray(photo_uint8),
    ]
    for image in inputs:
        np.testing.assert_array_equal(segment(image, method), expected)


def test_grayscale_and_rgba_are_accepted(photo_uint8):
    gray = photo_uint8.mean(axis=2).astype(np.uint8)
    assert assert_label_map(segment(gray), (224, 224)) > 1
    rgba = np.dstack([photo_uint8, np.full((224, 224), 255, np.uint8)])
    np.testing.assert_array_equal(segment(rgba, "slic"), segment(photo_uint8, "slic"))


def test_labels_are_relabelled_consecutively():
    labels = segmentation._sequential(np.array([[5, 5, 9], [-3, 9, 100]]))
    np.testing.assert_array_equal(labels, [[1, 1, 2], [0, 2, 3]])
    assert labels.dtype == np.int64


def test_per_method_functions_match_segment(photo):
    np.testing.assert_array_equal(segmentation.slic(photo, n_segments=30), segment(photo, "slic", n_segments=30))
    np.testing.assert_array_equal(segmentation.grid(photo, rows=2, cols=2), segment(photo, "grid", rows=2, cols=2))


def test_default_params_match_the_function_signatures():
    assert METHODS == tuple(DEFAULT_PARAMS)
    for method in METHODS:
        signature = inspect.signature(getattr(segmentation, method))
        defaults = {name: p.default for name, p in signature.parameters.items() if name != "image"}
        if method == "grid":
            assert defaults["n_segments"] is None  # None means DEFAULT_PARAMS' 49 unless rows and cols given
            defaults["n_segments"] = 49
        assert defaults == dict(DEFAULT_PARAMS[method])
    assert dict(DEFAULT_PARAMS["quickshift"]) == {"kernel_size": 4, "max_dist": 200, "ratio": 0.2,
                                                   "sigma": 0.0, "seed": 42}


def test_default_params_are_read_only():
    with pytest.raises(TypeError):
        DEFAULT_PARAMS["slic"]["n_segments"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        DEFAULT_PARAMS["new"] = {}  # type: ignore[index]


# ----------------------------------------------------------------------------------------- errors


def test_unknown_method(photo):
    with pytest.raises(ValueError, match=r"unknown segmentation method 'watershed'; choose one of "
                                         r"quickshift, slic, felzenszwalb, grid"):
        segment(photo, "watershed")
    with pytest.raises(ValueError, match="unknown segmentation method"):
        segment(photo, None)


@pytest.mark.parametrize(("method", "name", "accepted"), [
    ("slic", "kernel_size", "n_segments, compactness, sigma, max_num_iter"),
    ("quickshift", "scale", "kernel_size, max_dist, ratio, sigma, seed"),
    ("felzenszwalb", "compactness", "scale, sigma, min_size"),
    ("grid", "sigma", "n_segments, rows, cols"),
])
def test_unknown_parameter_lists_accepted_ones(photo, method, name, accepted):
    with pytest.raises(TypeError, match=rf"unknown parameter '{name}' for method '{method}'; "
                                        rf"{method} accepts: {accepted}"):
        segment(photo, method, **{name: 1})


@pytest.mark.parametrize(("method", "controls"), [
    ("quickshift", "kernel_size and max_dist"),
    ("felzenszwalb", "scale"),
])
def test_n_segments_rejected_with_the_controlling_parameter(photo, method, controls):
    with pytest.raises(TypeError, match=rf"{method} does not take n_segments; its granularity is "
                                        rf"controlled by {controls}"):
        segment(photo, method, n_segments=20)


@pytest.mark.parametrize(("method", "params", "message"), [
    ("quickshift", {"kernel_size": 0}, r"quickshift: kernel_size must be a number > 0; got 0"),
    ("quickshift", {"kernel_size": float("nan")}, r"kernel_size must be a number > 0; got nan"),
    ("quickshift", {"max_dist": -1}, r"quickshift: max_dist must be a number > 0; got -1"),
    ("quickshift", {"ratio": 1.5}, r"quickshift: ratio must be a number in \[0, 1\]; got 1.5"),
    ("quickshift", {"sigma": -0.1}, r"quickshift: sigma must be a number >= 0; got -0.1"),
    ("quickshift", {"seed": -1}, r"quickshift: seed must be a non-negative integer or None; got -1"),
    ("slic", {"n_segments": 0}, r"slic: n_segments must be an integer >= 1; got 0"),
    ("slic", {"compactness": 0}, r"slic: compactness must be a number > 0; got 0"),
    ("slic", {"sigma": -1}, r"slic: sigma must be a number >= 0; got -1"),
    ("slic", {"max_num_iter": 0}, r"slic: max_num_iter must be an integer >= 1; got 0"),
    ("felzenszwalb", {"scale": 0}, r"felzenszwalb: scale must be a number > 0; got 0"),
    ("felzenszwalb", {"sigma": -2}, r"felzenszwalb: sigma must be a number >= 0; got -2"),
    ("felzenszwalb", {"min_size": -1}, r"felzenszwalb: min_size must be an integer >= 0; got -1"),
    ("grid", {"n_segments": 0}, r"grid: n_segments must be an integer >= 1; got 0"),
    ("grid", {"rows": 0}, r"grid: rows must be an integer >= 1; got 0"),
    ("grid", {"cols": -2}, r"grid: cols must be an integer >= 1; got -2"),
    ("grid", {"rows": 300}, r"grid: rows=300 exceeds the image height of 224 pixels"),
    ("grid", {"cols": 225}, r"grid: cols=225 exceeds the image width of 224 pixels"),
    ("grid", {"rows": 4, "cols": 5, "n_segments": 30},
     r"grid: rows=4 x cols=5 makes 20 cells, not n_segments=30; pass n_segments, or rows and cols"),
])
def test_invalid_values(photo, method, params, message):
    with pytest.raises(ValueError, match=message):
        segment(photo, method, **params)


@pytest.mark.parametrize(("method", "params", "message"), [
    ("slic", {"n_segments": 2.5}, r"slic: n_segments must be an integer >= 1; got 2.5"),
    ("slic", {"n_segments": True}, r"slic: n_segments must be an integer >= 1; got True"),
    ("quickshift", {"kernel_size": "4"}, r"quickshift: kernel_size must be a number > 0; got '4'"),
    ("quickshift", {"seed": 1.5}, r"quickshift: seed must be a non-negative integer or None; got 1.5"),
    ("grid", {"rows": 2.0}, r"grid: rows must be an integer >= 1; got 2.0"),
])
def test_wrong_types(photo, method, params, message):
    with pytest.raises(TypeError, match=message):
        segment(photo, method, **params)


@pytest.mark.parametrize("method", ["quickshift", "slic", "felzenszwalb"])
def test_normalised_image_is_rejected_except_by_grid(method):
    normalised = torch.linspace(-2, 2, 3 * 32 * 32).reshape(3, 32, 32)
    with pytest.raises(ValueError, match=rf"{method} segments a displayable image with values in \[0, 1\]; "
                                         r"got values in \[-2, 2\].*method='grid'"):
        segment(normalised, method)
    assert segment(normalised, "grid", n_segments=4).max() == 3


@pytest.mark.parametrize("method", ["quickshift", "slic", "felzenszwalb"])
def test_unsupported_channel_count(method):
    with pytest.raises(ValueError, match=rf"{method} needs a grayscale \(1\), RGB \(3\) or RGBA \(4\) image; "
                                         r"got 2 channels"):
        segment(torch.rand(2, 16, 16), method)


def test_bad_image_type():
    with pytest.raises(TypeError, match="image must be"):
        segment([[0.0, 1.0]])
