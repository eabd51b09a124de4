"""Fill every segment of an image from its own border, all segments at once.

SEDC's ``'inpaint'`` perturbation replaces a segment by an inpainting of it from the pixels
around it, as if that segment alone had been removed. The original implementation calls
``cv2.inpaint`` once per segment (:func:`opencv_inpaint`, the reference). :func:`harmonic_inpaint`
computes a comparable fill for every segment in one batched PyTorch computation, on the image's
device: inside each segment it solves Laplace's equation with the pixels just outside that segment
as the (Dirichlet) boundary values, so the fill is the smoothest surface that continues the border
colours inward.

Method
------
Because each segment is filled with *all* other pixels known, the segments' equations are
independent and one image-sized iteration solves all of them: a pixel's 4-neighbours in its own
segment are unknowns, those in other segments are known image values, and neighbours outside the
image are ignored (a reflecting, Neumann, image border). The iteration is red-black successive
over-relaxation (SOR). The pixels are stored in a padded, flattened grid of odd width, so that the
red pixels are the even flat indices, the black pixels the odd ones, and every 4-neighbour of a red
pixel is a black pixel at a fixed offset: each half-sweep is a handful of contiguous vector
operations. Each segment gets its own relaxation factor from its area (near the optimal
``2 / (1 + sin(pi / d))`` for a segment of diameter ``d``), and starts from the mean of its
boundary pixels, so a few dozen sweeps reach the tolerance.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
import torch

from ..base.errors import InputError, InputTypeError
from ..base.validate import positive_number

OPENCV_METHODS = ("ns", "telea")

# The slowest mode of a segment of area A decays like that of a disk of area A (its lowest
# Dirichlet eigenvalue, pi * j0**2 / A with j0 = 2.4048 the first zero of the Bessel function J0,
# is the smallest of all shapes of that area: Faber-Krahn). Segments touching the image border
# reflect there and count double area. The 0.7 (assume a slightly slower mode, i.e. relax a little
# more) was tuned on photos with quickshift and SLIC segments: fewest sweeps to a given error.
_SLOWEST_MODE = 0.7 * math.pi * 2.404825557695773 ** 2
_CHECK_EVERY = 4  # sweeps between convergence checks (each check synchronises with the device)


class _Stencil(NamedTuple):
    """One colour of the red-black SOR (red: even flat indices, black: odd).

    The update of a pixel ``p`` of this colour is
    ``x[p] <- keep[p] * x[p] + known[p] + sum_d coefs[d, p] * x[neighbour_d(p)]``
    with the relaxation factor folded into ``keep``, ``known`` and ``coefs``.
    """

    start: int  # first index into this colour's array that is updated
    stop: int  # one past the last
    offsets: tuple[int, ...]  # index shift from a pixel to each neighbour in the other colour's array
    labels: torch.Tensor  # (L,) segment of each updated pixel, -1 on padding
    coefs: tuple[torch.Tensor, ...]  # four (L,): omega / count for a same-segment neighbour, else 0
    known: torch.Tensor  # (R, L) omega * mean contribution of the known (other-segment) neighbours
    keep: torch.Tensor  # (L,) 1 - omega (1 on padding)
    boundary_sum: torch.Tensor  # (R, L) sum of the known neighbours (for the initial fill)
    boundary_count: torch.Tensor  # (L,) number of known neighbours


class _Sweep(NamedTuple):
    """A stencil bound to the state: views of the pixels it updates and of their neighbours."""

    stencil: _Stencil
    current: torch.Tensor  # (R, L) view of the updated pixels
    neighbours: tuple[torch.Tensor, ...]  # four (R, L) views into the other colour


def harmonic_inpaint(
    image: torch.Tensor,
    labels: torch.Tensor,
    *,
    iterations: int | None = None,
    tol: float = 1e-3,
) -> torch.Tensor:
    """Fill every segment harmonically from its own border, all segments at once.

    For each segment ``s`` the fill is the solution of Laplace's equation on the pixels of ``s``
    whose boundary values are the image pixels 4-adjacent to ``s`` (all pixels outside ``s`` are
    known, as if ``s`` alone were removed). Neighbours outside the image are ignored (reflecting
    image border). All segments are solved together by red-black SOR on the image's device.

    Parameters
    ----------
    image : torch.Tensor
        Float tensor of shape (B, C, H, W) (usually B = 1), any value range. Every image of the
        batch is filled with the same ``labels``.
    labels : torch.Tensor
        Integer tensor of shape (H, W) with non-negative segment labels (normally 0..N-1).
        Moved to the image's device.
    iterations : int or None, optional
        Maximum number of SOR sweeps. None (default) allows ``10 * max(H, W) + 100``, far more
        than convergence to ``tol`` needs.
    tol : float, optional
        Stop once no pixel changes by more than ``tol`` in a sweep (checked every 4 sweeps).
        Default 1e-3, a quarter of a grey level for images in [0, 1]; the distance to the
        converged fill is then typically a few ``tol`` at the worst pixel and far below ``tol``
        on average. 0 runs exactly ``iterations`` sweeps.

    Returns
    -------
    torch.Tensor
        Tensor of the shape, dtype and device of ``image``: at every pixel of segment ``s``, the
        fill of ``s``. Values lie within the per-channel [min, max] of the image.

    Raises
    ------
    TypeError
        When ``image`` or ``labels`` is not a tensor of a supported dtype, or ``iterations`` /
        ``tol`` has the wrong type.
    ValueError
        For mismatched shapes, negative labels, non-finite image values, or invalid
        ``iterations`` / ``tol``.

    Notes
    -----
    Where a segment reaches the image border it has no known pixels there (zero normal
    derivative), so the fill extends the nearest known colours to the border. A segment covering
    the whole image has no border at all; it is filled with its mean colour. Computation is in
    float32 (float64 images stay float64); the result has the input's dtype.

    Examples
    --------
    >>> image = torch.rand(1, 3, 64, 64)
    >>> labels = torch.arange(64).div(16, rounding_mode="floor").repeat(64, 1)  # 4 stripes
    >>> harmonic_inpaint(image, labels).shape
    torch.Size([1, 3, 64, 64])
    """
    image, labels = _check_inputs(image, labels)
    max_sweeps, tol = _check_limits(iterations, tol, image.shape[-2:])
    work = image.to(torch.float64 if image.dtype == torch.float64 else torch.float32)
    batch, channels, height, width = work.shape
    labels = labels.to(torch.int64)
    if int(labels.max()) >= labels.numel():  # sparse ids: make them 0..N-1 to keep per-segment tables small
        labels = torch.unique(labels, return_inverse=True)[1].reshape(height, width)
    fill = _solve(work.reshape(batch * channels, height, width), labels, max_sweeps, tol)
    fill = fill.reshape(batch, channels, height, width)
    fill = torch.clamp(fill, work.amin(dim=(2, 3), keepdim=True), work.amax(dim=(2, 3), keepdim=True))
    return fill.to(image.dtype).contiguous()


def _solve(grid: torch.Tensor, labels: torch.Tensor, max_sweeps: int, tol: float) -> torch.Tensor:
    """Fill the segments of ``grid`` (R, H, W) by red-black SOR; returns (R, H, W)."""
    height, width = labels.shape
    flat_labels, width_padded = _pad_flat(labels, height, width, fill=-1)
    flat_image, _ = _pad_flat(grid, height, width, fill=0.0)
    n_segments = int(labels.max()) + 1
    omega = _relaxation(labels, n_segments, grid.dtype)
    stencils = [_stencil(c, flat_labels, flat_image, omega, width_padded) for c in (0, 1)]
    start = _initial_fill(grid, labels, stencils, n_segments)
    state, _ = _pad_flat(start, height, width, fill=0.0)
    halves = [state[:, 0::2].contiguous(), state[:, 1::2].contiguous()]
    sweeps = [_bind(halves[c], halves[1 - c], stencils[c]) for c in (0, 1)]
    _sor(sweeps, max_sweeps, tol)
    state[:, 0::2] = halves[0]
    state[:, 1::2] = halves[1]
    return state.view(-1, height + 2, width_padded)[:, 1 : height + 1, 1 : width + 1]


def _check_inputs(image: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(image, torch.Tensor):
        raise InputTypeError(f"image must be a float torch tensor of shape (B, C, H, W); got {type(image).__name__}")
    if not image.is_floating_point():
        raise InputTypeError(f"image must be a float tensor; got dtype {image.dtype}")
    if image.ndim != 4:
        raise InputError(f"image must have shape (B, C, H, W); got {tuple(image.shape)}")
    if not isinstance(labels, torch.Tensor):
        raise InputTypeError(f"labels must be an integer torch tensor of shape (H, W); got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InputTypeError(f"labels must be an integer tensor; got dtype {labels.dtype}")
    if tuple(labels.shape) != tuple(image.shape[-2:]):
        raise InputError(f"labels must have shape (H, W) = {tuple(image.shape[-2:])} to match the image; "
                         f"got {tuple(labels.shape)}")
    if labels.numel() == 0:
        raise InputError("image must have at least one pixel")
    labels = labels.to(image.device)
    if int(labels.min()) < 0:
        raise InputError(f"labels must be non-negative segment ids (0..N-1); got minimum {int(labels.min())}")
    image = image.detach()
    if not bool(torch.isfinite(image).all()):
        raise InputError("image contains NaN or infinite values")
    return image, labels


def _check_limits(iterations: Any, tol: Any, size: torch.Size) -> tuple[int, float]:
    if isinstance(tol, bool) or not isinstance(tol, Real):
        raise InputTypeError(f"tol must be a non-negative number; got {tol!r}")
    if not tol >= 0 or not math.isfinite(tol):
        raise InputError(f"tol must be a non-negative number; got {tol!r}")
    if iterations is None:
        if tol == 0:
            raise InputError("tol=0 never stops early; pass iterations (a positive integer) as well")
        return 10 * max(size) + 100, float(tol)
    if isinstance(iterations, bool) or not isinstance(iterations, Integral):
        raise InputTypeError(f"iterations must be a positive integer or None; got {iterations!r}")
    return positive_number("iterations", iterations, integer=True, allow_none=False), float(tol)


def _pad_flat(grid: torch.Tensor, height: int, width: int, fill: float) -> tuple[torch.Tensor, int]:
    """Pad (…, H, W) by one pixel of ``fill`` (more on the right for an odd width) and flatten."""
    extra = 1 if (width + 2) % 2 == 0 else 0  # the padded width must be odd for red-black indexing
    padded = torch.nn.functional.pad(grid, (1, 1 + extra, 1, 1), value=fill)
    return padded.reshape(*grid.shape[:-2], -1), width + 2 + extra


def _relaxation(labels: torch.Tensor, n_segments: int, dtype: torch.dtype) -> torch.Tensor:
    """Per-segment SOR factor from a bound on the segment's slowest Jacobi mode."""
    flat = labels.reshape(-1)
    area = torch.bincount(flat, minlength=n_segments).to(dtype)
    edge = torch.cat([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touches = torch.bincount(edge, minlength=n_segments) > 0
    area = torch.where(touches, 2 * area, area).clamp(min=1)
    rho = (1 - _SLOWEST_MODE / (4 * area)).clamp(min=0.0, max=1.0)
    return 2 / (1 + torch.sqrt(1 - rho * rho))


def _stencil(colour: int, flat_labels: torch.Tensor, flat_image: torch.Tensor, omega: torch.Tensor,
             width_padded: int) -> _Stencil:
    """The update of one colour (0: even flat indices, 1: odd) of the padded, flattened grid."""
    total = flat_labels.numel()
    start = (width_padded - colour + 1) // 2  # first index whose flat position is in row 1
    stop = (total - width_padded - colour + 1) // 2  # one past the last one in row H
    offsets = tuple((2 * colour + d - 1) // 2 for d in (1, -1, width_padded, -width_padded))
    own = flat_labels[colour::2][start:stop]
    inside = own >= 0
    other_labels = flat_labels[1 - colour::2]
    other_image = flat_image[:, 1 - colour::2]
    dtype = flat_image.dtype
    same = []
    known_count = torch.zeros(own.shape, dtype=dtype, device=own.device)
    known_sum = flat_image.new_zeros(flat_image.shape[0], stop - start)
    for offset in offsets:
        neighbour = other_labels[start + offset : stop + offset]
        valid = inside & (neighbour >= 0)
        same.append((valid & (neighbour == own)).to(dtype))
        known = (valid & (neighbour != own)).to(dtype)
        known_count += known
        known_sum += known * other_image[:, start + offset : stop + offset]
    same = torch.stack(same)
    count = (same.sum(0) + known_count).clamp(min=1)
    relax = torch.where(inside, omega[own.clamp(min=0)], torch.zeros_like(count))
    return _Stencil(start, stop, offsets, own, tuple(same * (relax / count)), known_sum * (relax / count),
                    1 - relax, known_sum, known_count)


def _bind(own: torch.Tensor, other: torch.Tensor, stencil: _Stencil) -> _Sweep:
    start, stop = stencil.start, stencil.stop
    neighbours = tuple(other[:, start + offset : stop + offset] for offset in stencil.offsets)
    return _Sweep(stencil, own[:, start:stop], neighbours)


def _initial_fill(image: torch.Tensor, labels: torch.Tensor, stencils: list[_Stencil],
                  n_segments: int) -> torch.Tensor:
    """Each segment's mean boundary colour (its own mean colour if it has no boundary), per pixel."""
    rows = image.shape[0]
    boundary_sum = image.new_zeros(rows, n_segments)
    boundary_count = image.new_zeros(n_segments)
    for stencil in stencils:
        index = stencil.labels.clamp(min=0)  # padding has no known neighbours and adds nothing
        boundary_sum.index_add_(1, index, stencil.boundary_sum)
        boundary_count.index_add_(0, index, stencil.boundary_count)
    flat = labels.reshape(-1)
    pixels = image.reshape(rows, -1)
    own_sum = pixels.new_zeros(rows, n_segments).index_add_(1, flat, pixels)
    own_count = torch.bincount(flat, minlength=n_segments).to(pixels.dtype).clamp(min=1)
    means = torch.where(boundary_count > 0, boundary_sum / boundary_count.clamp(min=1), own_sum / own_count)
    return means[:, flat].reshape(rows, *labels.shape)


def _sor(sweeps: list[_Sweep], max_sweeps: int, tol: float) -> int:
    """Red-black SOR sweeps until no pixel changes by more than ``tol``; returns the sweeps run."""
    for sweep in range(1, max_sweeps + 1):
        check = tol > 0 and (sweep % _CHECK_EVERY == 0 or sweep == max_sweeps)
        before = [half.current.clone() for half in sweeps] if check else None
        for half in sweeps:
            _half_sweep(half)
        if check:
            change = max(float((half.current - old).abs().max()) for half, old in zip(sweeps, before))
            if change <= tol:
                return sweep
    return max_sweeps


def _half_sweep(half: _Sweep) -> None:
    """Over-relax the pixels of one colour towards the mean of their neighbours, in place."""
    stencil = half.stencil
    current = half.current.mul_(stencil.keep).add_(stencil.known)
    for coef, neighbour in zip(stencil.coefs, half.neighbours):
        current.addcmul_(neighbour, coef)


def opencv_inpaint(image: np.ndarray, labels: np.ndarray, method: str = "ns", radius: float = 3) -> np.ndarray:
    """Fill every segment with ``cv2.inpaint`` from its own border, one OpenCV call per segment.

    This is the original SEDC ``'inpaint'`` (``method='ns'``) and ``'inpaint_telea'``
    (``method='telea'``) fill: for each segment ``s`` the image, converted to uint8 with
    ``(image * 255).astype(np.uint8)``, is inpainted under the mask of ``s`` and the inpainted
    pixels of ``s`` (divided by 255) become its fill.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, C) with C = 1 or 3, or (H, W); float in [0, 1] or uint8.
    labels : numpy.ndarray
        Integer (H, W) segment labels.
    method : {'ns', 'telea'}, optional
        ``cv2.INPAINT_NS`` (Navier-Stokes, default) or ``cv2.INPAINT_TELEA``.
    radius : float, optional
        Inpainting neighbourhood radius in pixels, default 3 (as in SEDC).

    Returns
    -------
    numpy.ndarray
        Float32 array of the image's shape with values in [0, 1]: at every pixel of segment
        ``s``, the fill of ``s``.

    Raises
    ------
    TypeError
        When ``image`` or ``labels`` is not a numpy array of a supported dtype.
    ValueError
        For unsupported shapes or channel counts, float values outside [0, 1], an unknown
        ``method`` or a non-positive ``radius``.
    """
    import cv2

    flag = _opencv_flag(method, cv2)
    radius = positive_number("radius", radius, allow_none=False)
    pixels = _uint8_image(image)
    labels = _numpy_labels(labels, pixels.shape[:2])
    fill = np.empty(pixels.shape, dtype=np.float32)
    for segment in np.unique(labels):
        inside = labels == segment
        painted = cv2.inpaint(pixels, inside.astype(np.uint8) * 255, radius, flag)
        fill[inside] = painted.reshape(pixels.shape)[inside] / np.float32(255)
    return fill


def _opencv_flag(method: Any, cv2: Any) -> int:
    flags = {"ns": cv2.INPAINT_NS, "telea": cv2.INPAINT_TELEA}
    if not isinstance(method, str) or method not in flags:
        raise InputError(f"method must be one of {OPENCV_METHODS}; got {method!r}")
    return flags[method]


def _uint8_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputTypeError(f"image must be a numpy array (H, W, C) or (H, W); got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise InputError(f"image must have shape (H, W), (H, W, 1) or (H, W, 3) for OpenCV inpainting; "
                         f"got {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise InputTypeError(f"image dtype must be float (values in [0, 1]) or uint8; got {image.dtype}")
    if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise InputError("float image values must be finite and lie in [0, 1] (pass uint8 for 0..255 images)")
    return np.ascontiguousarray((image * 255).astype(np.uint8))


def _numpy_labels(labels: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        raise InputTypeError(f"labels must be an integer numpy array of shape (H, W); got {type(labels).__name__}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputTypeError(f"labels must have an integer dtype; got {labels.dtype}")
    if labels.shape != tuple(shape):
        raise InputError(f"labels must have shape (H, W) = {tuple(shape)} to match the image; got {labels.shape}")
    return labels
