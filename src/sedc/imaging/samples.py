"""Sample photos: scikit-image's photographs as the model's input (``sedc demo``, the benchmark,
the tests and the example notebook all use these)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..base.errors import InputError

DEMO_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")  # sedc demo, the benchmark, the tests
DEMO_SIZE = 224


def sample_photo(name: str, size: int | None = DEMO_SIZE) -> np.ndarray:
    """scikit-image's photo ``name`` as (size, size, 3) float32 RGB in [0, 1].

    Gray photos get three equal channels and an alpha channel is dropped; ``size=None`` keeps the
    photo's own size.

    Raises
    ------
    InputError
        For a name that is not one of scikit-image's sample images.
    """
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if not callable(loader) or name.startswith("_"):
        raise InputError(f"{name!r} is not a scikit-image sample image; e.g. {', '.join(DEMO_PHOTOS)}")
    return as_rgb_float(loader(), size)


def sample_photos(names: Sequence[str] = DEMO_PHOTOS, size: int | None = DEMO_SIZE
                  ) -> list[tuple[str, np.ndarray]]:
    """``(name, photo)`` for each name (see :func:`sample_photo`)."""
    return [(name, sample_photo(name, size)) for name in names]


def as_rgb_float(array: np.ndarray, size: int | None = None) -> np.ndarray:
    """An image array as (H, W, 3) float32 RGB in [0, 1], resized to ``size`` x ``size`` when given
    (anti-aliased, as the paper's photos were)."""
    from skimage.transform import resize

    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    array = array[..., :3]
    if size is not None:
        array = resize(array, (size, size), anti_aliasing=True, preserve_range=False)
    elif array.dtype == np.uint8:
        array = array / 255.0
    return np.clip(array, 0.0, 1.0).astype(np.float32)
