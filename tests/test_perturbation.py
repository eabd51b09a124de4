"""The fills (``sedc.core.perturbation``): the Gaussian blur against OpenCV, the inpainting
fills, shapes, dtypes and ranges, seeds, custom callables and ready arrays, and the reference's
own fills against ``make_fill``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from helpers.images import coffee, grid_segments
from helpers.models import SeededConvNet, quadrants

import sedc
from sedc.core.perturbation import gaussian_blur, make_fill
from sedc.imaging.inpaint import harmonic_inpaint, opencv_inpaint
from sedc.imaging.samples import sample_photo


def test_blur_equals_opencv():
    image = sample_photo("chelsea", 224)
    ours = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    theirs = cv2.GaussianBlur(image, (31, 31), 0)
    assert np.abs(ours - theirs).max() < 1e-5


def test_blur_of_an_image_smaller_than_the_kernel_equals_opencv():
    image = np.random.default_rng(0).random((10, 12, 3), dtype=np.float32)
    ours = gaussian_blur(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - cv2.GaussianBlur(image, (31, 31), 0)).max() < 1e-5


@pytest.mark.parametrize("shape", [(32, 32), (15, 20), (20, 15), (10, 10)])
def test_blur_fill_equals_opencv_at_every_size(shape):
    photo = coffee(*shape)
    image = torch.from_numpy(photo).permute(2, 0, 1)[None]
    seg = torch.zeros(shape, dtype=torch.int64)
    fill = make_fill(image, seg, "blur")
    assert fill.dtype == torch.float32 and fill.shape == image.shape
    want = cv2.GaussianBlur(photo, (31, 31), 0)
    np.testing.assert_allclose(fill[0].permute(1, 2, 0).numpy(), want, atol=1e-5)
    # an explicit sigma is used, on both paths (torch and the small-image OpenCV fallback)
    sharp = gaussian_blur(image, 31, sigma=2.0)
    assert sharp.dtype == torch.float32
    np.testing.assert_allclose(sharp[0].permute(1, 2, 0).numpy(), cv2.GaussianBlur(photo, (31, 31), 2.0), atol=1e-5)


def test_blur_kernel_size_is_checked():
    image = torch.from_numpy(coffee()).permute(2, 0, 1)[None]
    torch.testing.assert_close(gaussian_blur(image, 1), image)  # a 1x1 kernel changes nothing
    assert gaussian_blur(image, 3).shape == image.shape
    for ksize in (0, 2, -1, 4):
        with pytest.raises(ValueError, match="positive odd"):
            gaussian_blur(image, ksize)


@pytest.mark.parametrize("mode", sedc.MODES)
def test_each_fill_has_the_right_shape_dtype_device_and_range(coffee32, seg32, mode):
    image = torch.from_numpy(coffee32).permute(2, 0, 1)[None]
    fill = make_fill(image, torch.from_numpy(seg32), mode)
    assert fill.shape == image.shape and fill.dtype == torch.float32 and fill.device == image.device
    assert torch.isfinite(fill).all() and fill.min() >= 0 and fill.max() <= 1
    assert not torch.equal(fill, image)


@pytest.mark.parametrize("mode", ["harmonic", "inpaint", "inpaint_telea"])
def test_inpainting_fills_are_the_named_method(mode):
    photo = coffee()
    image = torch.from_numpy(photo).permute(2, 0, 1)[None]
    seg = np.kron(np.arange(16).reshape(4, 4), np.ones((8, 8), np.int64)) * 3 + 5  # labels 5, 8, ...
    fill = make_fill(image, torch.from_numpy(seg), mode)
    if mode == "harmonic":
        want = harmonic_inpaint(image, torch.from_numpy(np.unique(seg, return_inverse=True)[1].reshape(seg.shape)))
    else:
        filled = opencv_inpaint(photo, seg, method="telea" if mode == "inpaint_telea" else "ns")
        want = torch.from_numpy(filled.transpose(2, 0, 1).copy())[None]
    torch.testing.assert_close(fill, want, rtol=0, atol=1e-6)
    assert fill.dtype == torch.float32
    if mode == "inpaint":
        other = opencv_inpaint(photo, seg, method="telea")
        assert not np.allclose(fill[0].permute(1, 2, 0).numpy(), other)  # NS and Telea do differ here


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
    assert torch.equal(a.perturbed_image, b.perturbed_image) and a.removed == b.removed


def test_custom_fill_callable_and_ready_fill(coffee32, seg32, seg4):
    seen = {}

    def dark(image, segments):
        seen["args"] = (image.shape, segments.shape)
        return torch.full_like(image, 0.2)

    # Quadrant 1 (5.38) filled with 0.2 scores 2.0, below quadrant 0 (4.10): one segment flips.
    a = sedc.explain(coffee32, quadrants(), seg4, mode=dark)
    assert seen["args"] == ((1, 3, 32, 32), (32, 32)) and a.mode == "custom"
    assert a.found and a.removed == [1] and a.new_class == 0 and a.n_evaluations == 5
    b = sedc.explain(coffee32, quadrants(), seg4, mode=np.full((32, 32, 3), 0.2, np.float32))
    assert a.removed == b.removed and a.n_evaluations == b.n_evaluations
    for e in (a, b):
        assert torch.equal(e.perturbed_image[0, :, :16, 16:], torch.full((3, 16, 16), 0.2))
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[:16, 16:] = False
        assert torch.equal(e.perturbed_image[0][:, outside], e.image[0][:, outside])
    with pytest.raises(ValueError, match=r"fill returned by bad\(\) has shape \(1, 3, 8, 8\)"):
        def bad(image, segments):
            return torch.zeros(1, 3, 8, 8)
        sedc.explain(coffee32, SeededConvNet(), seg32, mode=bad)


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_cpu_composer_builds_the_device_path_s_batches_bit_for_bit(channels_last):
    from sedc.core.perturbation import Composer, segment_index

    gen = torch.Generator().manual_seed(3)
    image, fill = torch.rand(1, 3, 24, 40, generator=gen), torch.rand(1, 3, 24, 40, generator=gen)
    labels, index = segment_index(np.repeat(np.arange(30), 32).reshape(24, 40) * 7, torch.device("cpu"))
    composer = Composer(image, fill, index, len(labels), channels_last=channels_last)
    rng = np.random.default_rng(0)
    for sets in ([0], [1 << 29], [int(rng.integers(0, 1 << 30)) for _ in range(5)]):
        host, device = composer.compose(sets), composer.compose_device(sets)  # compose is numpy on the CPU
        assert torch.equal(host, device) and host.dtype == device.dtype == torch.float32
        layout = torch.channels_last if channels_last else torch.contiguous_format
        assert host.is_contiguous(memory_format=layout)  # ready for the model: no copy on the way
