"""Fills ("perturbed images") and the composition of candidate images on the device.

A *fill* is an image the size of the input whose pixels replace those of removed segments
(docs/algorithm.md, "Fills"). It is computed once per explanation. Candidate images for a batch of segment
sets are then composed in one tensor operation from a per-pixel segment index.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..base.errors import InputError, InputTypeError
from ..base.options import MODES
from ..base.validate import as_image_tensor

"""Built-in fill modes. ``harmonic`` is the PyTorch-native inpainting (all segments at once)."""

BLUR_KSIZE = 31

def opencv_sigma(ksize: int) -> float:
    """OpenCV's Gaussian sigma for ``sigma=0``: ``0.3 * ((ksize - 1) / 2 - 1) + 0.8``."""
    return 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8


def gaussian_kernel1d(ksize: int, sigma: float, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel as OpenCV's ``getGaussianKernel`` computes it."""
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2.0
    kernel = np.exp(-(x * x) / (2.0 * sigma * sigma))
    kernel /= kernel.sum()
    return torch.as_tensor(kernel, dtype=torch.float32, device=device)


def gaussian_blur(image: torch.Tensor, ksize: int = BLUR_KSIZE, sigma: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur on the image's device, matching ``cv2.GaussianBlur(img, (k, k), 0)``.

    Parameters
    ----------
    image : torch.Tensor
        (1, C, H, W) float tensor.
    ksize : int
        Odd kernel size.
    sigma : float, optional
        Standard deviation; ``None`` uses OpenCV's rule for ``sigma=0``.

    Returns
    -------
    torch.Tensor
        Blurred (1, C, H, W) tensor; borders are reflected as OpenCV's BORDER_REFLECT_101.
    """
    if ksize < 1 or ksize % 2 == 0:
        raise InputError(f"ksize must be a positive odd integer; got {ksize}")
    sigma = opencv_sigma(ksize) if sigma is None else float(sigma)
    pad = ksize // 2
    channels, height, width = image.shape[1:]
    if height <= pad or width <= pad:
        return _opencv_blur(image, ksize, sigma)
    kernel = gaussian_kernel1d(ksize, sigma, image.device)
    x = F.pad(image.float(), (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, ksize, 1).expand(channels, 1, ksize, 1), groups=channels)
    x = F.conv2d(x, kernel.view(1, 1, 1, ksize).expand(channels, 1, 1, ksize), groups=channels)
    return x


def _opencv_blur(image: torch.Tensor, ksize: int, sigma: float) -> torch.Tensor:
    """OpenCV fallback for images smaller than the kernel's reach (torch cannot reflect-pad them)."""
    import cv2

    array = image[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
    out = cv2.GaussianBlur(array, (ksize, ksize), sigma)
    if out.ndim == 2:
        out = out[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None].to(image.device)


def random_fill_array(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """Uniform noise in [0, 1), (H, W, C) float32, from ``numpy.random.default_rng(seed)``.

    Drawn on the host so that the same seed gives the same fill on every device.
    """
    return np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)


def make_fill(
    image: torch.Tensor,
    segments: torch.Tensor,
    mode: Any = "blur",
    *,
    seed: int = 0,
) -> torch.Tensor:
    """Compute the fill for ``mode`` on the image's device.

    Parameters
    ----------
    image : torch.Tensor
        (1, C, H, W) float tensor.
    segments : torch.Tensor
        (H, W) integer tensor of segment labels on the image's device.
    mode : str, callable, torch.Tensor or numpy.ndarray
        Trusted, checked by :class:`~sedc.ExplainOptions` (or the seed API) before: one of
        :data:`MODES`; a callable ``(image, segments) -> fill`` receiving the (1, C, H, W)
        image tensor and the (H, W) label tensor on the device; or a ready fill image.
    seed : int
        Seed of the ``random`` fill.

    Returns
    -------
    torch.Tensor
        (1, C, H, W) float32 fill on the image's device.
    """
    if isinstance(mode, str):
        return _builtin_fill(image, segments, mode, seed)
    if isinstance(mode, (torch.Tensor, np.ndarray)):
        return _check_fill(mode, image, "the fill image passed as mode")
    if callable(mode):
        name = getattr(mode, "__name__", type(mode).__name__)
        return _check_fill(mode(image, segments), image, f"the fill returned by {name}()")
    raise InputTypeError(f"mode must be one of {list(MODES)}, a callable (image, segments) -> fill, "
                    f"or a fill image; got {type(mode).__name__}")


def _builtin_fill(image: torch.Tensor, segments: torch.Tensor, mode: str, seed: int) -> torch.Tensor:
    _, channels, height, width = image.shape
    if mode == "mean":
        return image.mean(dim=(2, 3), keepdim=True).expand_as(image).contiguous()
    if mode == "blur":
        return gaussian_blur(image)
    if mode == "random":
        noise = random_fill_array(height, width, channels, seed)
        return torch.from_numpy(noise.transpose(2, 0, 1).copy())[None].to(image.device)
    if mode == "harmonic":
        from ..imaging.inpaint import harmonic_inpaint

        labels = torch.unique(segments, return_inverse=True)[1]
        return harmonic_inpaint(image, labels)
    from ..imaging.inpaint import opencv_inpaint

    array = image[0].permute(1, 2, 0).cpu().numpy()
    filled = opencv_inpaint(array, segments.cpu().numpy(), method="telea" if mode == "inpaint_telea" else "ns")
    return torch.from_numpy(np.ascontiguousarray(filled.transpose(2, 0, 1)))[None].to(image.device)


def _check_fill(fill: Any, image: torch.Tensor, what: str) -> torch.Tensor:
    if isinstance(fill, np.ndarray):
        fill = as_image_tensor(fill)
    if not isinstance(fill, torch.Tensor):
        raise InputTypeError(f"{what} must be a torch tensor (1, C, H, W)/(C, H, W) or a numpy (H, W, C) "
                        f"array; got {type(fill).__name__}")
    if fill.ndim == 3:
        fill = fill[None]
    if tuple(fill.shape) != tuple(image.shape):
        raise InputError(f"{what} has shape {tuple(fill.shape)}; it must match the image, "
                         f"{tuple(image.shape)}")
    fill = fill.detach().to(device=image.device, dtype=torch.float32)
    if not torch.isfinite(fill).all():
        raise InputError(f"{what} contains NaN or infinite values")
    return fill


class Composer:
    """Builds batches of candidate images from segment sets, on the device, in one operation.

    Parameters
    ----------
    image, fill : torch.Tensor
        (1, C, H, W) tensors on the target device.
    index : torch.Tensor
        (H, W) long tensor mapping each pixel to its segment's position 0..N-1.
    n_segments : int
        N.
    channels_last : bool
        Return batches in channels-last memory format.
    """

    def __init__(self, image: torch.Tensor, fill: torch.Tensor, index: torch.Tensor, n_segments: int,
                 channels_last: bool = False) -> None:
        self.image = image
        self.fill = fill
        self.index = index
        self.n_segments = n_segments
        self.channels_last = channels_last
        self._nbytes = max(1, math.ceil(n_segments / 8))
        self._host: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def members(self, sets: Sequence[int]) -> np.ndarray:
        """(B, N) bool array: which segment positions each set (a bit mask) contains."""
        raw = b"".join(s.to_bytes(self._nbytes, "little") for s in sets)
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(len(sets), self._nbytes),
                             axis=1, bitorder="little")[:, : self.n_segments]
        return bits.astype(bool)

    def membership(self, sets: Sequence[int]) -> torch.Tensor:
        """(B, N) bool tensor on the device from segment sets given as bit masks."""
        return torch.from_numpy(self.members(sets)).to(self.image.device, non_blocking=True)

    def compose(self, sets: Sequence[int]) -> torch.Tensor:
        """(B, C, H, W) candidate images: the fill on each set's segments, the image elsewhere.

        On the CPU the batch is built by numpy, on one thread (:meth:`compose_host`); elsewhere
        by torch on the device (:meth:`compose_device`). Both select pixels and compute nothing,
        so their batches are equal to the bit.
        """
        if self.image.device.type == "cpu":
            return self.compose_host(sets)
        return self.compose_device(sets)

    def compose_device(self, sets: Sequence[int]) -> torch.Tensor:
        """:meth:`compose` with torch on the image's device: one gather and one ``torch.where``."""
        pixel_mask = self.membership(sets)[:, self.index].unsqueeze(1)
        batch = torch.where(pixel_mask, self.fill, self.image)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def compose_host(self, sets: Sequence[int]) -> torch.Tensor:
        """:meth:`compose` on the CPU with numpy, on one thread, in the batch's memory format.

        torch splits an element-wise kernel over every core through OpenMP, and a parallel
        region waits for its slowest thread: on the shared 2-core CI machine (load average 4-5)
        ``torch.where`` took about 12 ms for a batch of 1 or 2 at 224 x 224, numpy about 0.5 ms
        per image, and ONNX Runtime's calls that followed ran slower too (chelsea, blur, batch
        2: 19.5 against 15.6 ms per evaluation inside the runtime). Channels-last batches are
        built in (B, H, W, C) order and handed over as a channels-last view: no extra copy.
        """
        image, fill, index = self._host_arrays()
        mask = np.take(self.members(sets), index, axis=1)  # C order; members[:, index] is not
        if self.channels_last:
            return torch.from_numpy(np.where(mask[..., None], fill, image)).permute(0, 3, 1, 2)
        return torch.from_numpy(np.where(mask[:, None], fill, image))

    def _host_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The image and the fill as numpy views ((C, H, W), or (H, W, C) for channels-last),
        and the per-pixel segment positions; made once."""
        if self._host is None:
            image, fill = (t.detach()[0] for t in (self.image, self.fill))
            if self.channels_last:
                image, fill = image.permute(1, 2, 0), fill.permute(1, 2, 0)
            # contiguous in that order: np.where lays its output out like its inputs
            self._host = (np.ascontiguousarray(image.numpy()), np.ascontiguousarray(fill.numpy()),
                          self.index.numpy())
        return self._host


def segment_index(segments: np.ndarray, device: torch.device) -> tuple[np.ndarray, torch.Tensor]:
    """Sorted unique labels and the (H, W) per-pixel position of each pixel's label, on ``device``."""
    labels, inverse = np.unique(segments, return_inverse=True)
    index = torch.from_numpy(inverse.reshape(segments.shape).astype(np.int64)).to(device)
    return labels, index

