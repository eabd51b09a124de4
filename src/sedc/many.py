"""Explaining many images: ``explain_many`` / ``iter_explain`` (cross-image batching).

Interface draft: each item of ``images`` is an image (anything :func:`sedc.explain` accepts) or
a zero-argument callable returning one (a loader: its errors are reported for that item only).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from .engine import explain
from .explanation import Explanation


def iter_explain(images: Iterable[Any], classifier: Any, segments: Any = None, *,
                 segmenter: Callable[[Any], Any] | None = None, on_error: str = "raise",
                 **options: Any) -> Iterator[tuple[int, Explanation | BaseException]]:
    """Yield ``(index, Explanation)`` as images finish (or ``(index, exception)`` with on_error="return")."""
    for i, item in enumerate(images):
        try:
            image = item() if callable(item) else item
            seg = segments[i] if isinstance(segments, (list, tuple)) else segments
            if seg is None and segmenter is not None:
                seg = segmenter(image)
            yield i, explain(image, classifier, seg, **options)
        except Exception as err:  # noqa: BLE001
            if on_error == "raise":
                raise
            yield i, err


def explain_many(images: Iterable[Any], classifier: Any, segments: Any = None, **options: Any
                 ) -> list[Explanation]:
    """Explain every image; results in input order."""
    results = dict(iter_explain(images, classifier, segments, **options))
    return [results[i] for i in sorted(results)]
