"""Figure paths and their thumbnails (``thumbs/<stem>.jpg``), made once with PIL."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

THUMB_DIR = "thumbs"
"""Folder of the thumbnails, inside the report folder."""

THUMB_WIDTH = 360
"""Width in pixels of a thumbnail (a 3-panel figure gives panels of about 120 pixels)."""

THUMB_QUALITY = 82
"""JPEG quality of the thumbnails."""


def figure_path(folder: Path, row: dict[str, Any]) -> str | None:
    """The row's figure as a relative POSIX path, if it is a safe path to an existing file.

    Parameters
    ----------
    folder : pathlib.Path
        The results folder, which figure paths are relative to.
    row : dict
        A results row; its ``figure`` may be None (``--no-figures``).

    Returns
    -------
    str or None
        The path, or None when there is no figure, it is missing, or it is not a plain
        relative path inside ``folder`` (absolute, ``..``, a URL-like ``x:`` name).
    """
    figure = row.get("figure")
    if not isinstance(figure, str) or not figure or ":" in figure or "\\" in figure:
        return None
    path = PurePosixPath(figure)
    if path.is_absolute() or ".." in path.parts:
        return None
    return path.as_posix() if (folder / path).is_file() else None


def thumb_path(figure: str) -> str:
    """``"a/b.png"`` -> ``"thumbs/a/b.jpg"``: where a figure's thumbnail goes."""
    return (PurePosixPath(THUMB_DIR) / PurePosixPath(figure).with_suffix(".jpg")).as_posix()


def url(path: str) -> str:
    """A relative path as a URL: percent-encoded, ``/`` kept (``"a b.png"`` -> ``"a%20b.png"``)."""
    return quote(path, safe="/")


def make_thumbnails(folder: Path, figures: Iterable[str]) -> set[str]:
    """Make the thumbnails that are missing or older than their figure.

    Parameters
    ----------
    folder : pathlib.Path
        The results folder.
    figures : iterable of str
        Figure paths relative to ``folder`` (from :func:`figure_path`).

    Returns
    -------
    set of str
        The figures that have an up-to-date thumbnail afterwards (a figure PIL cannot read
        gets none; the page then shows its link without a picture).
    """
    done = set()
    for figure in dict.fromkeys(figures):
        if make_thumbnail(folder / figure, folder / thumb_path(figure)):
            done.add(figure)
    return done


def make_thumbnail(source: Path, target: Path) -> bool:
    """Write a small JPEG of ``source`` at ``target`` unless it is already up to date.

    Parameters
    ----------
    source : pathlib.Path
        An image file (a figure PNG).
    target : pathlib.Path
        The thumbnail to write; its folder is created if needed.

    Returns
    -------
    bool
        Whether ``target`` exists and is up to date afterwards.
    """
    try:
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            return True
        from PIL import Image

        with Image.open(source) as image:
            image.draft("RGB", (THUMB_WIDTH, THUMB_WIDTH))
            picture = flatten(image)
            height = max(1, round(picture.height * THUMB_WIDTH / picture.width))
            picture.thumbnail((THUMB_WIDTH, height), reducing_gap=2.0)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        picture.save(partial, "JPEG", quality=THUMB_QUALITY, optimize=True)
        partial.replace(target)
        return True
    except (OSError, ValueError, SyntaxError):
        return False


def flatten(image: Any) -> Any:
    """An RGB copy of a PIL image, transparency composited on white."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
