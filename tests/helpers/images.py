"""Images, segment maps, fills and loaders for the tests.

- :func:`tiny_image` and :func:`grid`: the 12 x 12 images (optionally marked with
  :data:`SENTINEL`) and their 3 x 3 grid, for the multi-image tests and the tiny networks of
  :mod:`helpers.models`.
- :func:`grid_segments`: a grid of any number of rows and columns (the hand-computed searches on
  :class:`helpers.models.RegionModel`); :func:`zeros_fill`: the black fill those searches use.
- :func:`load_array`, :func:`fail_loading`: picklable loader bodies (with ``functools.partial``).
- :func:`coffee`: a crop of scikit-image's coffee photo, one of the demo photos.

The four demo photos themselves come from the library: ``sedc.imaging.samples.DEMO_PHOTOS`` and
``sample_photo(name, size)``.
"""

from __future__ import annotations

import numpy as np
import torch

SIZE = 12     # image side (pixels)
CELL = 4      # grid cell side: a 3 x 3 grid, 9 segments
SENTINEL = 0.3  # not a multiple of 1/256: no other test image (nor its mean fill) holds it


def tiny_image(seed: int, sentinel: bool = False, side: int = SIZE) -> np.ndarray:
    """A (side, side, 3) float32 image of multiples of 1/256.

    Parameters
    ----------
    seed : int
        Seed of the pixel values.
    sentinel : bool
        Put :data:`SENTINEL` at pixel (0, 0), in every channel (the image the failing models of
        :mod:`helpers.models` fail on).
    side : int
        Image side in pixels.
    """
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(side, side, 3)).astype(np.float32) / 256
    if sentinel:
        image[0, 0, :] = SENTINEL
    return image


def grid(side: int = SIZE, cell: int = CELL) -> np.ndarray:
    """The grid label map of square ``cell`` cells (default: the 3 x 3 grid of the tiny images)."""
    n = side // cell
    return grid_segments(n, n, cell)


def grid_segments(rows: int, cols: int, cell: int = 4) -> np.ndarray:
    """A rows x cols grid of square ``cell`` x ``cell`` cells, labels 0..rows*cols-1 row-major."""
    return np.kron(np.arange(rows * cols).reshape(rows, cols), np.ones((cell, cell), dtype=np.int64))


def zeros_fill(image: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Custom fill: black."""
    return torch.zeros_like(image)


def load_array(image: np.ndarray) -> np.ndarray:
    """A trivial picklable loader body (use with functools.partial)."""
    return image


def fail_loading(name: str) -> np.ndarray:
    """A loader that always fails (use with functools.partial)."""
    raise OSError(f"cannot read {name}")


def coffee(height: int = 32, width: int = 32) -> np.ndarray:
    """The coffee photo at ``max(height, width)`` pixels, cropped to (height, width, 3) float32."""
    from sedc.imaging.samples import sample_photo

    return sample_photo("coffee", max(height, width))[:height, :width]
