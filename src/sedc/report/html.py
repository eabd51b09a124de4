"""``report.html`` and ``summary.json``: a self-contained page about a results folder.

The page opens from disk with no network: its stylesheet, script and plots (SVG) are inline,
and the only files it refers to are the figures and thumbnails in the folder, by relative
path. Every string that comes from the rows is HTML-escaped (or, in the gallery, set as text
by the script).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..base.schema import REPORT_FILE, SUMMARY_FILE
from . import svg
from .assets import CSS, JS
from .gallery import gallery_data, gallery_section
from .markdown import check_columns, fixed, percent
from .summary import is_found, is_toward_truth, label, summarize
from .thumbs import figure_path, make_thumbnails, thumb_path, url

TOP = 12
"""Rows shown in the confusion and transition tables (summary.json has them all)."""
MAX_TOWARD = 100
"""Misclassifications explained toward the truth listed in their table (the gallery has all)."""
MAX_ERRORS = 200
"""Failed images listed on the page (errors.jsonl has them all)."""


def write_report(folder: Path | str, rows: list[dict[str, Any]],
                 errors: list[dict[str, Any]] | None = None, *, thumbnails: bool = True,
                 title: str | None = None) -> Path:
    """Write ``folder/report.html`` and ``folder/summary.json``.

    Parameters
    ----------
    folder : pathlib.Path or str
        The results folder: figure paths in the rows are relative to it. Created if needed.
    rows : list of dict
        The rows of ``results.jsonl``.
    errors : list of dict, optional
        The rows of ``errors.jsonl`` (``{"image": ..., "error": ...}``), listed on the page.
    thumbnails : bool, default True
        Make the missing or outdated thumbnails (``folder/thumbs/<stem>.jpg``) from the
        figures. With False, only the thumbnails already there are used.
    title : str, optional
        The page title (default: "SEDC report: <folder name>").

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    errors = list(errors or [])
    summary = summarize(rows, errors)
    figures = [figure_path(folder, row) for row in rows]
    present = [f for f in figures if f is not None]
    if thumbnails:
        thumbs = make_thumbnails(folder, present)
    else:
        thumbs = {f for f in present if (folder / thumb_path(f)).is_file()}
    write_text(folder / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    page = render_page(rows, errors, summary, figures, thumbs,
                       title or f"SEDC report: {folder.resolve().name}")
    return write_text(folder / REPORT_FILE, page)


def write_text(path: Path, text: str) -> Path:
    """Write a UTF-8 file through a temporary file, so readers never see half of it."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def render_page(rows: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]],
                summary: dict[str, Any], figures: Sequence[str | None], thumbs: set[str],
                title: str) -> str:
    """The whole HTML page.

    Parameters
    ----------
    rows : sequence of dict
        Results rows.
    errors : sequence of dict
        Failed images.
    summary : dict
        ``summarize(rows, errors)``.
    figures : sequence of str or None
        Per row, its checked figure path (None: none).
    thumbs : set of str
        The figures that have a thumbnail.
    title : str
        Page title.

    Returns
    -------
    str
        HTML text.
    """
    data = gallery_data(rows, figures, thumbs, summary["modes"])
    body = [header(title, rows, summary), mode_section(summary), plot_section(rows, summary),
            classes_section(summary, rows, figures), gallery_section(summary, rows, data)]
    if errors:
        body.append(error_section(errors))
    body.append('<footer>Made by <code>sedc report</code>. All figures are also in '
                '<code>summary.json</code>.</footer>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)}</title><style>{CSS}</style></head>'
            f'<body><main>{"".join(body)}</main><script>{JS}</script></body></html>\n')


def header(title: str, rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Title, run settings and the headline figures."""
    models = distinct(rows, "model")
    segmentations = distinct(rows, "segmentation")
    modes = summary["modes"]
    meta = [plural(summary["n_unique_images"], "image"),
            plural(len(modes), "mode") + (": " + ", ".join(modes) if modes else "")]
    if models:
        meta.append("model " + ", ".join(models))
    if segmentations:
        meta.append("segmentation " + ", ".join(segmentations))
    cards = [stat(f"{summary['n_images']:,}", "explanations (image \u00d7 mode)"),
             stat(percent(summary["found_rate"]), "counterfactual found", "good"),
             stat(fixed(summary["median_segments"], 1), "median k (segments removed)"),
             stat(seconds(summary["mean_time_s"]), "mean time per explanation")]
    if summary["n_stopped_by_limit"]:
        cards.append(stat(percent(summary["stopped_by_limit_rate"]), "stopped by a limit"))
    if summary["accuracy"] is not None:
        cards.append(stat(percent(summary["accuracy"]), "accuracy (labelled images)"))
    if summary["n_unverified"]:
        cards.append(stat(f"{summary['n_unverified']:,}", "counterfactuals not verified alone", "bad"))
    if summary["n_fragile"]:
        cards.append(stat(f"{summary['n_fragile']:,}", "fragile (a fill or a second model disagrees)"))
    if summary["n_errors"]:
        cards.append(stat(f"{summary['n_errors']:,}", "failed images", "bad"))
    return (f'<header><h1>{escape(title)}</h1><div class="meta">'
            + escape(" \u00b7 ".join(meta)) + f'</div><div class="cards">{"".join(cards)}</div>'
            '</header>')


def stat(value: str, caption: str, cls: str = "") -> str:
    """A headline figure card."""
    return (f'<div class="stat {cls}"><span class="v">{escape(value)}</span>'
            f'<span class="l">{escape(caption)}</span></div>')


def mode_section(summary: dict[str, Any]) -> str:
    """The paper's table: one line per mode (and one for all modes); per search and mode when
    the rows were made by several searches (``by_search``); a column per check that ran."""
    by_search = summary.get("by_search")
    checks = check_columns(summary)
    keys = [key for _, key in checks]
    heads = ("Search", "Mode") if by_search else ("Mode",)
    lead = len(heads) - 1
    heads += ("Images", "Found", "Stopped by a limit", "Mean k", "Median k", "Mean evaluations",
              "Mean time", *(CHECK_HEADS[key] for key in keys))
    head = "".join(f'<th class="{"" if i <= lead else "n"}">{h}</th>' for i, h in enumerate(heads))
    lines = []
    for search, figures in (by_search or {None: summary}).items():
        cell = [] if search is None else [escape(search)]
        lines += mode_lines(figures, summary["modes"], cell, keys)
    title, note = ("Results by search and mode", "One row per image, mode and search") if by_search else (
        "Results by mode", "One row per image and mode")
    note += (". k is the number of segments removed, over the counterfactuals found; evaluations "
             "and times are over all rows.")
    if checks:
        note += (" Each check's column is over the rows it ran on (a check that did not run has "
                 "no column); the area is the share of the image removed, over the found rows.")
    return (f'<section id="modes"><h2>{title}</h2><p class="note">{note}</p>'
            f'<div class="panel"><table><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}'
            '</tbody></table></div></section>')


CHECK_HEADS = {"verified_rate": "Verified alone", "holds_under_every_fill_rate": "Holds under every fill",
               "irreducible_rate": "Irreducible", "transfers_rate": "Transfers", "mean_area": "Mean area"}
"""The table's heading of each check column (see :data:`sedc.report.markdown.CHECK_COLUMNS`)."""


def mode_lines(figures: dict[str, Any], modes: list[str], lead: list[str], keys: Sequence[str] = ()) -> list[str]:
    """The lines of one group's modes (each mode coloured as everywhere on the page: its place in
    ``modes``), then an ``All modes`` line when there are several; ``lead`` cells go first,
    ``keys`` are the check columns."""
    lines = [mode_line(f'<span class="mode m{modes.index(mode) % 8}">{escape(mode)}</span>', group,
                       lead=lead, keys=keys)
             for mode, group in figures["by_mode"].items()]
    if len(figures["by_mode"]) != 1:
        lines.append(mode_line("All modes", figures, "all", lead, keys))
    return lines


def mode_line(name_html: str, figures: dict[str, Any], cls: str = "", lead: Sequence[str] = (),
              keys: Sequence[str] = ()) -> str:
    """One line of the per-mode table (``name_html`` and the ``lead`` cells are already HTML);
    ``keys``: the check columns."""
    cells = [f"{figures['n_images']:,}", rate(figures["found_rate"]),
             rate(figures["stopped_by_limit_rate"], "lim"), fixed(figures["mean_segments"], 2),
             fixed(figures["median_segments"], 1), fixed(figures["mean_evaluations"], 1),
             seconds(figures["mean_time_s"])]
    cells += [percent(figures.get(key)) if key == "mean_area" else rate(figures.get(key)) for key in keys]
    return (f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in lead) + f"<td>{name_html}</td>"
            + "".join(f'<td class="n">{c}</td>' for c in cells) + "</tr>")


def rate(value: float | None, cls: str = "") -> str:
    """A percentage with a small bar."""
    if value is None:
        return "-"
    return (f'<span class="rate">{percent(value)}<span class="meter {cls}">'
            f'<i style="width:{100 * value:.1f}%"></i></span></span>')


def classes_section(summary: dict[str, Any], rows: Sequence[dict[str, Any]],
                    figures: Sequence[str | None]) -> str:
    """Class transitions; for labelled runs also accuracy, the most frequent confusions and
    the misclassifications explained toward their true class (SEDC-T, true class as target)."""
    transitions = count_table(("Original class", "Counterfactual class"), [
        (t["from"], t["to"], t["count"]) for t in summary["transitions"]])
    panels = [panel("Class transitions: original \u2192 counterfactual", transitions)]
    note = "Transitions: what the model predicts once the segments are removed."
    toward_panel = ""
    if summary["n_labelled"]:
        note += (f" Accuracy {percent(summary['accuracy'])}: {summary['n_correct']:,} of "
                 f"{summary['n_labelled']:,} labelled images (each image counted once, "
                 "whatever the number of modes).")
        panels.append(panel("Most frequent confusions: true \u2192 predicted", count_table(
            ("True class", "Predicted"),
            [(c["true"], c["predicted"], c["count"]) for c in summary["confusions"]])))
        toward = [(row, fig) for row, fig in zip(rows, figures, strict=True)
                  if is_toward_truth(row)]
        toward_panel = panel("Misclassifications explained toward the true class",
                             toward_table(toward), 'id="toward" ')
    return (f'<section id="classes"><h2>Classes</h2><p class="note">{escape(note)}</p>'
            f'<div class="grid2">{"".join(panels)}</div>{toward_panel}</section>')


def panel(caption: str, content_html: str, attributes: str = "") -> str:
    """A titled panel (``content_html`` and ``attributes`` are already HTML)."""
    return f'<div {attributes}class="panel"><h3>{escape(caption)}</h3>{content_html}</div>'


def toward_table(items: list[tuple[dict[str, Any], str | None]]) -> str:
    """Rows whose SEDC-T target is their true class: what was removed to get it back."""
    if not items:
        return '<p class="empty">None (run SEDC-T with the true class as target).</p>'
    lines = []
    for row, figure in items[:MAX_TOWARD]:
        name = escape(str(row.get("image", "?")))
        if figure:
            name = f'<a href="{escape(url(figure))}">{name}</a>'
        result = (f'<span class="pill found">k = {len(row.get("removed") or [])}</span>'
                  if is_found(row) else
                  f'<span class="pill miss">{escape(str(row.get("stop_reason")))}</span>')
        lines.append(f"<tr><td>{name}</td><td>{escape(label(row, 'original'))}"
                     f'<span class="arrow">\u2192</span>{escape(label(row, "true"))}</td>'
                     f"<td>{result}</td></tr>")
    more = (f'<p class="note">{len(items) - MAX_TOWARD:,} more in the gallery '
            '("Toward the truth").</p>' if len(items) > MAX_TOWARD else "")
    return ('<table><thead><tr><th>Image</th><th>Predicted \u2192 true</th><th>Result</th>'
            f'</tr></thead><tbody>{"".join(lines)}</tbody></table>{more}')


def count_table(heads: tuple[str, str], items: list[tuple[str, str, int]]) -> str:
    """A table of (from, to, count) with proportional bars, the first :data:`TOP` only."""
    if not items:
        return '<p class="empty">None.</p>'
    biggest = max(n for _, _, n in items)
    lines = [f'<tr><td>{escape(a)}</td><td>{escape(b)}</td><td class="n">{n:,} '
             f'<span class="count-bar" style="width:{60 * n / biggest:.0f}px"></span></td></tr>'
             for a, b, n in items[:TOP]]
    more = (f'<p class="note">{len(items) - TOP:,} more in summary.json.</p>'
            if len(items) > TOP else "")
    return (f'<table><thead><tr><th>{heads[0]}</th><th>{heads[1]}</th><th class="n">Count</th>'
            f'</tr></thead><tbody>{"".join(lines)}</tbody></table>{more}')


def plot_section(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The k histogram and the cost plots (evaluations and time against segment count)."""
    plots = [("How many segments a counterfactual removes",
              svg.k_histogram(rows, summary["modes"])),
             ("Model evaluations against segments in the image",
              svg.scatter(rows, "n_segments_total", "n_evaluations", "segments in the image",
                          "model evaluations")),
             ("Search time against segments in the image",
              svg.scatter(rows, "n_segments_total", "elapsed_s", "segments in the image",
                          "time (s)"))]
    panels = "".join(f'<div class="panel plot"><h3>{escape(caption)}</h3>{chart}</div>'
                     for caption, chart in plots)
    return f'<section id="plots"><h2>Plots</h2><div class="grid2 plots">{panels}</div></section>'


def error_section(errors: Sequence[dict[str, Any]]) -> str:
    """The failed images and why (the first :data:`MAX_ERRORS`)."""
    lines = [f"<tr><td>{escape(str(e.get('image', '?')))}</td>"
             f"<td>{escape(str(e.get('error', '')))}</td></tr>" for e in errors[:MAX_ERRORS]]
    more = (f'<p class="note">{len(errors) - MAX_ERRORS:,} more in errors.jsonl.</p>'
            if len(errors) > MAX_ERRORS else "")
    return (f'<section id="errors"><h2>Failed images ({len(errors):,})</h2>'
            '<div class="panel errors"><table><thead><tr><th>Image</th><th>Error</th></tr>'
            f'</thead><tbody>{"".join(lines)}</tbody></table>{more}</div></section>')


def distinct(rows: Sequence[dict[str, Any]], key: str) -> list[str]:
    """The distinct non-null values of ``key``, in order of appearance."""
    return [str(v) for v in dict.fromkeys(row.get(key) for row in rows) if v is not None]


def plural(n: int, noun: str) -> str:
    """``plural(1, "mode")`` -> ``"1 mode"``, ``plural(1200, "image")`` -> ``"1,200 images"``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def seconds(value: float | None) -> str:
    """``4.123`` -> ``"4.12 s"``; None -> ``"-"``."""
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
