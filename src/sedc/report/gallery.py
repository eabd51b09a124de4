"""The gallery: its compact JSON data (rendered into cards by the page script) and controls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from ..base.schema import fills_summary
from .summary import (
    is_correct,
    is_found,
    is_fragile,
    is_labelled,
    is_limit_stop,
    is_toward_truth,
    label,
    numbers,
)
from .thumbs import url

PAGE = 60
"""Cards rendered at a time; "Show more" adds as many."""

COLUMNS = ("image", "figure", "thumb", "found", "original", "original_score", "new", "new_score",
           "k", "segments", "evals", "time", "mode", "reason", "limit", "target", "truth",
           "correct", "toward", "fragile", "verified", "fills")
"""Positions of the fields in each row of the gallery data (a list, to keep 10k rows small)."""

SORTS = (("file", "File order"), ("k-asc", "k: fewest segments first"),
         ("k-desc", "k: most segments first"), ("time-desc", "Time: slowest first"),
         ("time-asc", "Time: fastest first"), ("evals-desc", "Evaluations: most first"),
         ("segments-desc", "Segments in image: most first"),
         ("score-desc", "Original score: highest first"))
"""The sort options: value (a key of the script's SORTS) and text."""


class Names:
    """Interns strings: each distinct label is stored once in the page, rows hold indices."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, name: str | None) -> int:
        """The index of ``name`` (added if new); -1 for None."""
        if name is None:
            return -1
        return self.index.setdefault(name, len(self.index))

    def names(self) -> list[str]:
        """All names, by index."""
        return list(self.index)


def gallery_data(rows: Sequence[dict[str, Any]], figures: Sequence[str | None],
                 thumbs: set[str], modes: Sequence[str]) -> dict[str, Any]:
    """The gallery's data: one compact list per row, see :data:`COLUMNS`.

    Parameters
    ----------
    rows : sequence of dict
        Results rows.
    figures : sequence of str or None
        Per row, its checked figure path relative to the folder (None: no figure).
    thumbs : set of str
        The figures that have a thumbnail.
    modes : sequence of str
        The modes in display order (rows hold indices into it).

    Returns
    -------
    dict
        ``columns`` (name -> position), ``rows``, ``names`` (the interned labels and stop
        reasons), ``modes`` and ``page`` (cards rendered at a time).
    """
    names = Names()
    mode_index = {mode: i for i, mode in enumerate(modes)}
    data = [data_row(row, figure, figure in thumbs, names, mode_index)
            for row, figure in zip(rows, figures, strict=True)]
    return {"columns": {name: i for i, name in enumerate(COLUMNS)}, "rows": data,
            "names": names.names(), "modes": list(modes), "page": PAGE}


def data_row(row: dict[str, Any], figure: str | None, thumb: bool, names: Names,
             mode_index: dict[str, int]) -> list[Any]:
    """One row of the gallery data, in the order of :data:`COLUMNS`."""
    correct = is_correct(row)
    return [
        str(row.get("image", "?")), None if figure is None else url(figure), int(thumb),
        int(is_found(row)), names(label(row, "original")), rounded(row.get("original_score")),
        names(label(row, "new")), rounded(row.get("new_score")), len(row.get("removed") or []),
        whole(row.get("n_segments_total")), whole(row.get("n_evaluations")),
        rounded(row.get("elapsed_s")), mode_index.get(str(row.get("mode")), 0),
        names(str(row.get("stop_reason"))), int(is_limit_stop(row)),
        names(label(row, "target")) if row.get("target") is not None else -1,
        names(label(row, "true")) if is_labelled(row) else -1,
        -1 if correct is None else int(correct), int(is_toward_truth(row)),
        int(is_fragile(row)), -1 if row.get("verified") is None else int(bool(row["verified"])),
        names(fills_summary(row.get("fills")) if isinstance(row.get("fills"), dict) else None),
    ]


def rounded(value: Any, digits: int = 3) -> float | None:
    """A number rounded for the page, None if not a number."""
    values = numbers([value])
    return round(values[0], digits) if values else None


def whole(value: Any) -> int | None:
    """An integer for the page, None if not a number."""
    values = numbers([value])
    return int(values[0]) if values else None


def script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` are escaped."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def controls(summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """The filter chips, search box, sort menu and counter above the gallery.

    Parameters
    ----------
    summary : dict
        The output of :func:`sedc.report.summarize` (for the counts on the chips).
    rows : sequence of dict
        Results rows.

    Returns
    -------
    str
        HTML.
    """
    n = summary["n_images"]
    found = summary["n_found"]
    statuses = [("all", "All", n), ("found", "Found", found), ("notfound", "Not found", n - found)]
    if summary["n_stopped_by_limit"]:
        statuses.append(("limit", "Stopped by a limit", summary["n_stopped_by_limit"]))
    wrong = sum(is_correct(row) is False for row in rows)
    if wrong:
        statuses.append(("misclassified", "Misclassified", wrong))
    if summary["misclassified_explained_toward_truth"]:
        statuses.append(("toward", "Toward the truth",
                         summary["misclassified_explained_toward_truth"]))
    if summary["n_fragile"]:  # a fill or a second model disagrees with the counterfactual
        statuses.append(("fragile", "Fragile", summary["n_fragile"]))
    if summary["n_unverified"]:
        statuses.append(("unverified", "Not verified", summary["n_unverified"]))
    parts = ['<div class="controls">',
             chip_group("status-filter", "Filter by result", statuses, "all")]
    modes = summary["modes"]
    if len(modes) > 1:
        counts = [("-1", "All modes", n)]
        counts += [(str(i), mode, summary["by_mode"][mode]["n_images"])
                   for i, mode in enumerate(modes)]
        parts.append(chip_group("mode-filter", "Filter by mode", counts, "-1"))
    parts.append('<input type="search" id="search" placeholder="Search image or class" '
                 'aria-label="Search image or class">')
    options = "".join(f'<option value="{v}">{escape(text)}</option>' for v, text in SORTS)
    parts.append(f'<select id="sort" aria-label="Sort">{options}</select>')
    parts.append('<span id="count" aria-live="polite"></span></div>')
    return "".join(parts)


def chip_group(group_id: str, label_text: str, chips: list[tuple[str, str, int]],
               pressed: str) -> str:
    """A row of toggle buttons; ``chips`` holds (value, text, count)."""
    buttons = "".join(
        f'<button type="button" class="chip" data-value="{escape(value)}" '
        f'aria-pressed="{str(value == pressed).lower()}">{escape(text)}'
        f'<span class="k">{count:,}</span></button>' for value, text, count in chips)
    return (f'<div class="group" id="{group_id}" role="group" aria-label="{label_text}">'
            f'{buttons}</div>')


def gallery_section(summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                    data: dict[str, Any]) -> str:
    """The gallery section: controls, the empty grid the script fills, and the data.

    Parameters
    ----------
    summary : dict
        The output of :func:`sedc.report.summarize`.
    rows : sequence of dict
        Results rows.
    data : dict
        The output of :func:`gallery_data`.

    Returns
    -------
    str
        HTML.
    """
    return ('<section id="gallery-section"><h2>Gallery</h2>'
            '<p class="note">Every result; click a picture to open its figure (original, '
            'removed regions, counterfactual).</p>'
            + controls(summary, rows)
            + '<div class="gallery" id="gallery"></div>'
            '<button type="button" class="more" id="more" hidden>Show more</button>'
            '<noscript><p class="empty">The gallery needs JavaScript.</p></noscript>'
            f'<script type="application/json" id="sedc-data">{script_json(data)}</script>'
            '</section>')
