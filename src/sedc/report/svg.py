"""Inline SVG plots for the report page, drawn in plain Python (no plotting library).

The SVG carries CSS classes rather than colours, so the page's stylesheet (light or dark)
colours it. It has no ``xmlns`` attribute: inline SVG in HTML5 does not need one, and the page
holds no URL at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from .summary import is_found, numbers

WIDTH, HEIGHT = 440, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 10, 30, 48
DENSE = 1500
"""Above this many points a scatter plot merges points that fall in the same small cell."""
CELL = 5
"""Side (in SVG units) of the cells merging the points of a dense scatter plot."""
MAX_BARS = 30
"""At most this many histogram bars; larger k are grouped into wider bins."""


def k_histogram(rows: Sequence[dict[str, Any]], modes: Sequence[str]) -> str:
    """Histogram of k (segments removed) over the found rows, stacked by mode.

    Parameters
    ----------
    rows : sequence of dict
        Results rows (the rows not found are ignored).
    modes : sequence of str
        The modes in display order; mode ``i`` gets the CSS classes ``mc m{i % 8}``.

    Returns
    -------
    str
        An ``<svg>`` element, or a short note when nothing was found.
    """
    found = [row for row in rows if is_found(row)]
    if not found:
        return '<p class="empty">No counterfactual found: no k to plot.</p>'
    ks = [len(row.get("removed") or []) for row in found]
    width = max(1, math.ceil(max(ks) / MAX_BARS))
    n_bins = max(ks) // width + 1
    counts = [[0] * len(modes) for _ in range(n_bins)]
    index = {mode: i for i, mode in enumerate(modes)}
    for row, k in zip(found, ks, strict=True):
        counts[k // width][index.get(str(row.get("mode")), 0)] += 1
    first = min(ks) // width
    counts = counts[first:]
    y_ticks = nice_ticks(0, max(sum(c) for c in counts), 5)
    frame = Frame(first * width - 0.5, (first + len(counts)) * width - 0.5, 0, y_ticks[-1])
    parts = [frame.axes(x_ticks(first * width, (first + len(counts)) * width - 1), y_ticks,
                        "k (segments removed)", "counterfactuals")]
    for i, stack in enumerate(counts):
        parts.append(bar(frame, (first + i) * width, width, stack, modes))
    if len(modes) > 1:
        parts.append(legend([(f"mc m{i % 8}", mode) for i, mode in enumerate(modes)]))
    return svg(parts, "Histogram of k, the number of segments removed, over the counterfactuals "
                      "found")


def bar(frame: Frame, k: int, width: int, stack: list[int], modes: Sequence[str]) -> str:
    """One stacked histogram bar (with a tooltip), centred on ``k``."""
    what = f"k = {k}" if width == 1 else f"k = {k}-{k + width - 1}"
    detail = ", ".join(f"{mode} {n}" for mode, n in zip(modes, stack, strict=True) if n)
    out = [f"<g><title>{escape(what)}: {sum(stack)} ({escape(detail)})</title>"]
    centre = k + (width - 1) / 2
    x0, x1 = frame.x(centre - 0.42 * width), frame.x(centre + 0.42 * width)
    base = 0
    for i, n in enumerate(stack):
        if n:
            y0, y1 = frame.y(base), frame.y(base + n)
            out.append(f'<rect class="mc m{i % 8}" x="{x0:.1f}" y="{y1:.1f}" width="{x1 - x0:.1f}" '
                       f'height="{y0 - y1:.1f}"/>')
            base += n
    return "".join(out) + "</g>"


def scatter(rows: Sequence[dict[str, Any]], x_key: str, y_key: str, x_label: str,
            y_label: str) -> str:
    """Scatter plot of two numeric row fields, found rows and others in two colours.

    Above :data:`DENSE` points, points falling in the same small cell are drawn once, more
    opaque the more points they stand for, so that the SVG stays small for 10,000 rows.

    Parameters
    ----------
    rows : sequence of dict
        Results rows; rows missing either field are skipped.
    x_key, y_key : str
        Row keys of the two axes (e.g. ``"n_segments_total"``, ``"elapsed_s"``).
    x_label, y_label : str
        Axis titles.

    Returns
    -------
    str
        An ``<svg>`` element, or a short note when there is nothing to plot.
    """
    points = [(p[0], p[1], is_found(row)) for row in rows
              if len(p := numbers([row.get(x_key), row.get(y_key)])) == 2]
    if not points:
        return '<p class="empty">Nothing to plot.</p>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks_ = nice_ticks(min(xs), max(xs), 6)
    y_ticks = nice_ticks(0, max(ys), 5)
    frame = Frame(x_ticks_[0], x_ticks_[-1], 0, y_ticks[-1])
    parts = [frame.axes(x_ticks_, y_ticks, x_label, y_label)]
    parts += [dots(frame, points, True), dots(frame, points, False)]
    parts.append(legend([("found", "found"), ("miss", "not found")]))
    return svg(parts, f"{y_label} against {x_label}")


def dots(frame: Frame, points: list[tuple[float, float, bool]], found: bool) -> str:
    """The circles of one class of points (found or not), merged by cell when dense."""
    cls = "found" if found else "miss"
    chosen = [(frame.x(x), frame.y(y)) for x, y, f in points if f == found]
    if len(points) <= DENSE:
        return (f'<g class="{cls} dots">'
                + "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5"/>' for x, y in chosen)
                + "</g>")
    cells: dict[tuple[int, int], int] = {}
    for x, y in chosen:
        key = (int(x // CELL), int(y // CELL))
        cells[key] = cells.get(key, 0) + 1
    return (f'<g class="{cls} dots dense">'
            + "".join(f'<circle cx="{(i + 0.5) * CELL:.0f}" cy="{(j + 0.5) * CELL:.0f}" r="2.8" '
                      f'fill-opacity="{min(1.0, 0.3 + 0.1 * n):.1f}"/>'
                      for (i, j), n in cells.items())
            + "</g>")


def legend(entries: list[tuple[str, str]]) -> str:
    """A one-line legend at the top right: a coloured square and a name per entry."""
    out, x = [], WIDTH - RIGHT
    for cls, name in reversed(entries):
        x -= round(7.2 * len(name)) + 26
        out.append(f'<rect class="{cls}" x="{x}" y="5" width="11" height="11" rx="2"/>'
                   f'<text class="legend" x="{x + 15}" y="15">{escape(name)}</text>')
    return "<g>" + "".join(out) + "</g>"


class Frame:
    """Maps data coordinates to SVG coordinates inside the plot area, and draws the axes.

    Parameters
    ----------
    x0, x1, y0, y1 : float
        Data ranges shown along x and y.
    """

    def __init__(self, x0: float, x1: float, y0: float, y1: float) -> None:
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + 1
        self.y0, self.y1 = y0, y1 if y1 > y0 else y0 + 1

    def x(self, value: float) -> float:
        """SVG x of a data x."""
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        """SVG y of a data y (up is larger)."""
        return HEIGHT - BOTTOM - (value - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, x_ticks_: Sequence[float], y_ticks: Sequence[float], x_label: str,
             y_label: str) -> str:
        """Grid lines, tick labels and axis titles."""
        bottom, top = HEIGHT - BOTTOM, TOP
        out = ['<g class="axes">']
        for v in y_ticks:
            y = self.y(v)
            out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                       f'y2="{y:.1f}"/><text class="tick" x="{LEFT - 6}" y="{y + 4.5:.1f}" '
                       f'text-anchor="end">{tick_text(v)}</text>')
        for v in x_ticks_:
            x = self.x(v)
            out.append(f'<line class="tickmark" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" '
                       f'y2="{bottom + 4}"/><text class="tick" x="{x:.1f}" y="{bottom + 19}" '
                       f'text-anchor="middle">{tick_text(v)}</text>')
        out.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" '
                   f'y2="{bottom}"/>')
        out.append(f'<text class="title" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 8}" '
                   f'text-anchor="middle">{escape(x_label)}</text>')
        mid = (top + bottom) / 2
        out.append(f'<text class="title" transform="translate(15 {mid:.0f}) rotate(-90)" '
                   f'text-anchor="middle">{escape(y_label)}</text>')
        return "".join(out) + "</g>"


def svg(parts: list[str], label: str) -> str:
    """Wrap SVG elements in a responsive ``<svg>`` with an accessible label."""
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(label)}">' + "".join(parts) + "</svg>")


def x_ticks(lo: int, hi: int) -> list[float]:
    """Integer ticks between ``lo`` and ``hi`` (at most about 10)."""
    return [v for v in nice_ticks(lo, hi, 8) if lo <= v <= hi and float(v).is_integer()] or [lo]


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering ``[lo, hi]``.

    Parameters
    ----------
    lo, hi : float
        The data range.
    count : int
        About how many ticks.

    Returns
    -------
    list of float
        Increasing values, the first <= ``lo`` and the last >= ``hi``.
    """
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    n = math.ceil((hi - start) / step - 1e-9)
    return [round(start + i * step, 10) for i in range(n + 1)]


def tick_text(value: float) -> str:
    """Short tick label: ``1500`` -> ``"1.5k"``, ``0.25`` -> ``"0.25"``, ``3.0`` -> ``"3"``."""
    if abs(value) >= 10000:
        return f"{value / 1000:g}k"
    return f"{value:g}"
