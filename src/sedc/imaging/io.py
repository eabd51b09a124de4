"""Finding and loading image files, and naming the outputs made from them.

Used by the command-line interface; also handy in notebooks::

    from sedc.io import find_images, load_image
    for path in find_images(["photos/"]):
        image = load_image(path, 224)      # float32 (224, 224, 3) in [0, 1]
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from ..base.errors import ImageLoadError, InputError, InputTypeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "find_images",
    "image_id",
    "load_image",
    "safe_stem",
]

#: File extensions (lower case) picked up when searching folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_MAX_STEM = 120
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


# --------------------------------------------------------------------------------------------
# Finding images
# --------------------------------------------------------------------------------------------

def find_images(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    """Expand files and folders into the list of image files to process.

    Parameters
    ----------
    paths : sequence of str or pathlib.Path (or a single one)
        Files are taken as given, whatever their extension (so that loading an unsupported file
        fails with an error naming it). Folders are searched recursively for files whose
        extension is in ``IMAGE_EXTENSIONS`` (case-insensitive); hidden files and folders (names
        starting with ``"."``) are skipped and symbolic links to folders are not followed.

    Returns
    -------
    list of pathlib.Path
        In argument order, each folder's images sorted by relative path; a file reached twice is
        listed once (at its first occurrence). Empty when the folders hold no images.

    Raises
    ------
    TypeError
        If ``paths`` holds something other than str or Path.
    ValueError
        If a path does not exist or is neither a file nor a folder.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()
    for item in paths:
        for path in _expand(_as_path(item)):
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found


def _as_path(item: str | Path) -> Path:
    if not isinstance(item, (str, Path)):
        raise InputTypeError(f"image paths must be str or pathlib.Path; got {type(item).__name__}")
    return Path(item).expanduser()


def _expand(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return _search_folder(path)
    if not path.exists():
        raise InputError(f"image path does not exist: '{path}'")
    raise InputError(f"image path is neither a file nor a folder: '{path}'")


def _search_folder(folder: Path) -> list[Path]:
    hits: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        hits.extend(Path(root) / name for name in files
                    if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(hits, key=lambda p: p.relative_to(folder).as_posix())


# --------------------------------------------------------------------------------------------
# Loading images
# --------------------------------------------------------------------------------------------

def load_image(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as an RGB float array.

    The EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images are converted to
    RGB; transparent images are composited on white.

    Parameters
    ----------
    path : str or pathlib.Path
        Any format Pillow reads (multi-frame files give their first frame).
    size : int, (height, width) or None
        Resize to ``(size, size)`` or to ``(height, width)`` with bicubic (antialiased)
        resampling; None keeps the original size.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (H, W, 3) with values in [0, 1].

    Raises
    ------
    ImageLoadError
        (a ``ValueError``) naming the path and the reason, when the file is missing or cannot be
        decoded.
    TypeError, ValueError
        For an invalid ``size``.
    """
    target = _check_size(size)
    file = Path(path).expanduser()
    if not file.is_file():
        raise ImageLoadError(file, "file not found" if not file.exists() else "not a file")
    try:
        with Image.open(file) as im:
            im.load()
            image = ImageOps.exif_transpose(im)
            array = _to_rgb_array(image, target)
    except Exception as err:  # Pillow raises many exception types for broken files
        raise ImageLoadError(file, _reason(file, err)) from err
    return array


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if not isinstance(size, (tuple, list)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                 for s in pair):
        raise InputTypeError(f"size must be an int, a (height, width) pair of ints, or None; got {size!r}")
    if min(pair) < 1:
        raise InputError(f"size must be positive; got {size!r}")
    return int(pair[0]), int(pair[1])


def _reason(file: Path, err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if file.suffix.lower() not in IMAGE_EXTENSIONS:
        text += f" (supported extensions: {', '.join(IMAGE_EXTENSIONS)})"
    return text


def _to_rgb_array(image: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _high_bit_gray(image, size)
    rgb = _to_rgb_image(image)
    if size is not None and rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.float32) / np.float32(255.0)


def _to_rgb_image(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _high_bit_gray(image: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    gray = np.asarray(image.convert("F") if image.mode != "F" else image, dtype=np.float32)
    gray = gray / np.float32(_white_level(image.mode, float(gray.max(initial=0.0))))
    if size is not None and gray.shape != size:
        resized = Image.fromarray(gray).resize((size[1], size[0]), Image.Resampling.BICUBIC)
        gray = np.asarray(resized, dtype=np.float32)
    gray = np.clip(gray, 0.0, 1.0)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _white_level(mode: str, peak: float) -> float:
    if mode.startswith("I;16"):
        return 65535.0
    if peak <= 1.0 and mode == "F":
        return 1.0
    if peak <= 255.0:
        return 255.0
    return 65535.0 if peak <= 65535.0 else peak


# --------------------------------------------------------------------------------------------
# Output names
# --------------------------------------------------------------------------------------------

def image_id(path: str | Path, root: str | Path | None = None) -> str:
    """A stable, readable identifier for an image, for reports and result files.

    Parameters
    ----------
    path : str or pathlib.Path
        The image file.
    root : str, pathlib.Path or None
        The folder the image was found in (the folder given to :func:`find_images`).

    Returns
    -------
    str
        The path relative to ``root`` with forward slashes (``"sub/cat.png"``) when the image lies
        under ``root``; otherwise the path as given, with forward slashes.
    """
    file = Path(path)
    if root is not None:
        try:
            return file.absolute().relative_to(Path(root).absolute()).as_posix()
        except ValueError:  # not under root
            pass
    return file.as_posix()


def safe_stem(path: str | Path, taken: set[str]) -> str:
    """A file-name stem for an image's outputs, unique among ``taken``.

    The stem is the file name without extension, with unsafe characters replaced by ``"_"``.
    If it is taken (compared case-insensitively, for case-insensitive file systems), parent
    folder names are prefixed one at a time (``cat`` -> ``sub_cat``), then a counter is
    appended (``sub_cat_2``). The result is added to ``taken``.

    Parameters
    ----------
    path : str or pathlib.Path
        The image path, best relative (e.g. from :func:`image_id`) so parents are meaningful.
    taken : set of str
        Stems already used; updated in place.

    Returns
    -------
    str
    """
    if not isinstance(taken, set):
        raise InputTypeError(f"taken must be a set of str; got {type(taken).__name__}")
    used = {t.casefold() for t in taken}
    file = Path(path)
    parents = [_sanitize(p) for p in file.parent.parts if p not in ("..", ".")]
    parts = [p for p in parents if p] + [_sanitize(file.stem) or "image"]
    for n in range(1, len(parts) + 1):
        stem = _limit("_".join(parts[-n:]))
        if stem.casefold() not in used:
            taken.add(stem)
            return stem
    base, count = _limit("_".join(parts)), 2
    while f"{base}_{count}".casefold() in used:
        count += 1
    taken.add(f"{base}_{count}")
    return f"{base}_{count}"


def _sanitize(part: str) -> str:
    text = re.sub(r"[^\w.-]+", "_", part).strip("._ ")
    if text.casefold() in _WINDOWS_RESERVED:
        text = f"_{text}"
    return text


def _limit(stem: str) -> str:
    return stem if len(stem) <= _MAX_STEM else stem[-_MAX_STEM:].lstrip("._")
