"""Tests for sedc.imaging.inpaint: the batched harmonic fill and the per-segment OpenCV reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data, segmentation, transform

from sedc.imaging.inpaint import OPENCV_METHODS, harmonic_inpaint, opencv_inpaint


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Chelsea the cat, float64 (224, 224, 3) in [0, 1]."""
    return transform.resize(data.chelsea(), (224, 224), anti_aliasing=True)


@pytest.fixture(scope="module")
def photo_labels(photo: np.ndarray) -> np.ndarray:
    """SEDC's quickshift segmentation of the photo."""
    return segmentation.quickshift(photo, kernel_size=4, max_dist=200, ratio=0.2, rng=42).astype(np.int64)


@pytest.fixture(scope="module")
def small(photo: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A 112x112 version of the photo and its quickshift labels, as tensors (for the slower checks)."""
    image = transform.resize(photo, (112, 112), anti_aliasing=True)
    labels = segmentation.quickshift(image, kernel_size=3, max_dist=200, ratio=0.2, rng=42)
    return to_tensor(image), torch.from_numpy(labels).long()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()


def stripes(height: int, width: int, edges: list[int]) -> torch.Tensor:
    """Vertical stripes: label k for columns edges[k-1] <= x < edges[k]."""
    columns = torch.bucketize(torch.arange(width), torch.tensor(edges), right=True)
    return columns.expand(height, width).contiguous()


def harmonic_residual(fill: np.ndarray, image: np.ndarray, labels: np.ndarray) -> float:
    """Largest |x_p - mean of the 4-neighbours| inside segments, with other segments' pixels known.

    ``fill`` and ``image`` are (C, H, W); neighbours outside the image are ignored.
    """
    height, width = labels.shape
    total = np.zeros_like(fill)
    count = np.zeros(labels.shape)
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ys = slice(max(dy, 0), height + min(dy, 0))
        yd = slice(max(-dy, 0), height + min(-dy, 0))
        xs = slice(max(dx, 0), width + min(dx, 0))
        xd = slice(max(-dx, 0), width + min(-dx, 0))
        same = labels[yd, xd] == labels[ys, xs]
        total[:, yd, xd] += np.where(same, fill[:, ys, xs], image[:, ys, xs])
        count[yd, xd] += 1
    return float(np.abs(fill - total / count).max())


# ------------------------------------------------------------------------------- harmonic fill


def test_constant_image_fills_with_the_constant(photo_labels):
    image = torch.full((1, 3, 224, 224), 0.37)
    image[:, 1] = 0.8
    fill = harmonic_inpaint(image, torch.from_numpy(photo_labels))
    torch.testing.assert_close(fill, image, atol=1e-6, rtol=0)


def test_linear_ramp_is_reproduced_exactly():
    height, width = 40, 64
    ramp = torch.linspace(0.1, 0.9, width).expand(1, 1, height, width).contiguous()
    edges = [10, 25, 33, 50]  # stripes [0,10) [10,25) [25,33) [33,50) [50,64)
    labels = stripes(height, width, edges)
    fill = harmonic_inpaint(ramp, labels, tol=1e-7, iterations=20000)
    interior = slice(10, 50)  # stripes bounded by other stripes on both sides: linear data is harmonic
    torch.testing.assert_close(fill[..., interior], ramp[..., interior], atol=1e-5, rtol=0)
    # Outer stripes reflect at the image border, so they take the value just beyond their one side.
    torch.testing.assert_close(fill[..., :10], ramp[..., 10:11].expand(1, 1, height, 10), atol=1e-5, rtol=0)
    torch.testing.assert_close(fill[..., 50:], ramp[..., 49:50].expand(1, 1, height, 14), atol=1e-5, rtol=0)


def test_fill_is_harmonic_inside_every_segment(small):
    image, labels = small
    fill = harmonic_inpaint(image, labels, tol=1e-6)
    assert harmonic_residual(fill[0].numpy(), image[0].numpy(), labels.numpy()) < 1e-5


def test_default_tolerance_is_close_to_the_converged_fill(photo, photo_labels):
    image, labels = to_tensor(photo), torch.from_numpy(photo_labels)
    converged = harmonic_inpaint(image.double(), labels, tol=1e-7)
    fill = harmonic_inpaint(image, labels)
    error = (fill.double() - converged).abs()
    assert error.max() < 0.02 and error.mean() < 1e-3


def test_each_segment_is_filled_as_if_removed_alone(small):
    image, labels = small
    fill = harmonic_inpaint(image, labels, tol=1e-6)
    for segment in (0, 7, int(labels.max())):
        inside = labels == segment
        # That segment against one big other one; only the small segment needs to converge.
        alone = harmonic_inpaint(image, inside.long(), tol=0, iterations=300)
        torch.testing.assert_close(fill[..., inside], alone[..., inside], atol=1e-4, rtol=0)


def test_output_shape_dtype_device_and_batch(small):
    image, labels = small
    fill = harmonic_inpaint(image, labels)
    assert fill.shape == image.shape and fill.dtype == torch.float32 and fill.device == image.device
    assert fill.is_contiguous()
    assert harmonic_inpaint(image.double(), labels).dtype == torch.float64
    pair = torch.cat([image, image.flip(-1)])
    both = harmonic_inpaint(pair, labels, tol=1e-6)
    torch.testing.assert_close(both[1:], harmonic_inpaint(pair[1:], labels, tol=1e-6), atol=1e-5, rtol=0)
    assert harmonic_inpaint(image[:, :1], labels.int()).shape == (1, 1, 112, 112)


def test_values_stay_within_the_image_range(photo_labels):
    generator = torch.Generator().manual_seed(0)
    image = 0.2 + 0.5 * torch.rand(1, 3, 224, 224, generator=generator)
    fill = harmonic_inpaint(image, torch.from_numpy(photo_labels), tol=1e-2)  # stopped early, still bounded
    low = image.amin(dim=(2, 3), keepdim=True)
    high = image.amax(dim=(2, 3), keepdim=True)
    assert bool(((fill >= low) & (fill <= high)).all())


def test_any_value_range_and_sparse_labels(small):
    image, labels = small
    image = (image - 0.45) / 0.226  # ImageNet-style normalised
    fill = harmonic_inpaint(image, labels, tol=1e-6)
    sparse = harmonic_inpaint(image, labels * 1000 + 7, tol=1e-6)  # ids far above the pixel count
    torch.testing.assert_close(fill, sparse, atol=1e-5, rtol=0)


def test_single_segment_is_filled_with_its_mean():
    image = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    fill = harmonic_inpaint(image, torch.zeros(16, 20, dtype=torch.long))
    torch.testing.assert_close(fill, image.mean(dim=(2, 3), keepdim=True).expand_as(image), atol=1e-5, rtol=0)


def test_tiny_and_odd_sized_images():
    for height, width in ((1, 1), (1, 7), (5, 1), (3, 4), (7, 9)):
        image = torch.rand(1, 2, height, width, generator=torch.Generator().manual_seed(height * width))
        labels = (torch.arange(height * width) % 3).reshape(height, width)
        fill = harmonic_inpaint(image, labels, tol=1e-7, iterations=5000)
        assert fill.shape == image.shape and bool(torch.isfinite(fill).all())
        if labels.max() > 0:
            residual = harmonic_residual(fill[0].numpy(), image[0].numpy(), labels.numpy())
            assert residual < 1e-5


def test_iterations_caps_the_work(small):
    image, labels = small
    one = harmonic_inpaint(image, labels, iterations=1, tol=0)
    many = harmonic_inpaint(image, labels, tol=1e-5)
    assert not torch.allclose(one, many, atol=1e-3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(photo, photo_labels):
    image, labels = to_tensor(photo), torch.from_numpy(photo_labels)
    on_gpu = harmonic_inpaint(image.cuda(), labels, tol=1e-6)  # labels follow the image's device
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), harmonic_inpaint(image, labels, tol=1e-6), atol=1e-4, rtol=0)


def test_comparable_to_opencv_navier_stokes(photo, photo_labels):
    reference = opencv_inpaint(photo, photo_labels)
    fill = harmonic_inpaint(to_tensor(photo), torch.from_numpy(photo_labels))[0].permute(1, 2, 0).numpy()
    assert np.abs(fill - reference).mean() < 0.06


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"image": np.zeros((1, 3, 4, 4))}, TypeError, r"image must be a float torch tensor of shape \(B, C, H, W\); "
                                                   r"got ndarray"),
    ({"image": torch.zeros(1, 3, 4, 4, dtype=torch.uint8)}, TypeError, r"image must be a float tensor; got dtype "
                                                                       r"torch.uint8"),
    ({"image": torch.zeros(3, 4, 4)}, ValueError, r"image must have shape \(B, C, H, W\); got \(3, 4, 4\)"),
    ({"image": torch.full((1, 1, 4, 4), float("nan"))}, ValueError, "image contains NaN or infinite values"),
    ({"labels": np.zeros((4, 4), dtype=np.int64)}, TypeError, r"labels must be an integer torch tensor of shape "
                                                              r"\(H, W\); got ndarray"),
    ({"labels": torch.zeros(4, 4)}, TypeError, r"labels must be an integer tensor; got dtype torch.float32"),
    ({"labels": torch.zeros(4, 5, dtype=torch.long)}, ValueError, r"labels must have shape \(H, W\) = \(4, 4\) to "
                                                                  r"match the image; got \(4, 5\)"),
    ({"labels": torch.full((4, 4), -1)}, ValueError, r"labels must be non-negative segment ids \(0..N-1\); "
                                                     r"got minimum -1"),
    ({"tol": -1e-3}, ValueError, r"tol must be a non-negative number; got -0.001"),
    ({"tol": "small"}, TypeError, r"tol must be a non-negative number; got 'small'"),
    ({"tol": 0}, ValueError, r"tol=0 never stops early; pass iterations \(a positive integer\) as well"),
    ({"iterations": 0}, ValueError, r"iterations must be a positive integer; got 0"),
    ({"iterations": 2.5}, TypeError, r"iterations must be a positive integer or None; got 2.5"),
])
def test_harmonic_inpaint_errors(kwargs, error, message):
    arguments = {"image": torch.zeros(1, 3, 4, 4), "labels": torch.zeros(4, 4, dtype=torch.long)} | kwargs
    with pytest.raises(error, match=message):
        harmonic_inpaint(**arguments)


# ------------------------------------------------------------------------------ OpenCV reference


@pytest.mark.parametrize(("method", "flag"), [("ns", cv2.INPAINT_NS), ("telea", cv2.INPAINT_TELEA)])
def test_opencv_inpaint_matches_the_original_loop(photo, photo_labels, method, flag):
    pixels = (photo * 255).astype(np.uint8)
    expected = np.zeros(photo.shape, dtype=np.float32)
    for segment in range(photo_labels.max() + 1):
        mask = (photo_labels == segment).astype(np.uint8) * 255
        painted = cv2.inpaint(pixels, mask, 3, flag)
        expected[photo_labels == segment] = painted[photo_labels == segment] / 255
    result = opencv_inpaint(photo, photo_labels, method=method)
    assert result.dtype == np.float32 and result.shape == photo.shape
    np.testing.assert_allclose(result, expected, atol=1e-7, rtol=0)


def test_opencv_inpaint_grayscale_and_uint8(photo, photo_labels):
    gray = photo.mean(axis=2)
    result = opencv_inpaint(gray, photo_labels)
    assert result.shape == (224, 224) and result.dtype == np.float32
    pixels = (photo * 255).astype(np.uint8)
    np.testing.assert_array_equal(opencv_inpaint(pixels, photo_labels), opencv_inpaint(photo, photo_labels))
    assert OPENCV_METHODS == ("ns", "telea")


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((np.zeros((8, 8, 3)), np.zeros((8, 8), int)), {"method": "fast"}, ValueError,
     r"method must be one of \('ns', 'telea'\); got 'fast'"),
    ((np.zeros((8, 8, 3)), np.zeros((8, 8), int)), {"radius": 0}, ValueError, r"radius must be a positive number"),
    ((np.full((8, 8, 3), 2.0), np.zeros((8, 8), int)), {}, ValueError, r"float image values must be finite and lie "
                                                                       r"in \[0, 1\]"),
    ((np.zeros((8, 8, 4)), np.zeros((8, 8), int)), {}, ValueError, r"image must have shape \(H, W\), \(H, W, 1\) "
                                                                   r"or \(H, W, 3\) for OpenCV inpainting; got "
                                                                   r"\(8, 8, 4\)"),
    ((np.zeros((8, 8, 3), np.int32), np.zeros((8, 8), int)), {}, TypeError, r"image dtype must be float"),
    ((torch.zeros(8, 8, 3), np.zeros((8, 8), int)), {}, TypeError, r"image must be a numpy array"),
    ((np.zeros((8, 8, 3)), np.zeros((8, 8))), {}, TypeError, r"labels must have an integer dtype; got float64"),
    ((np.zeros((8, 8, 3)), np.zeros((8, 9), int)), {}, ValueError, r"labels must have shape \(H, W\) = \(8, 8\)"),
])
def test_opencv_inpaint_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        opencv_inpaint(*args, **kwargs)
