"""Markdown rendering of a summary: the paper's table per mode, for a terminal or a CI log."""

from __future__ import annotations

from typing import Any

COLUMNS = ("mode", "images", "found", "stopped by a limit", "mean k", "median k",
           "mean evaluations", "mean time (s)")
"""Header of the per-mode table."""

RIGHT = ("images", "found", "stopped by a limit", "mean k", "median k", "mean evaluations",
         "mean time (s)")
"""Right-aligned (numeric) columns."""

CHECK_COLUMNS = (("verified", "verified_rate"), ("holds under every fill", "holds_under_every_fill_rate"),
                 ("irreducible", "irreducible_rate"), ("transfers", "transfers_rate"),
                 ("mean area", "mean_area"))
"""The checks' columns (header, summary key), all percentages: a column is shown only when its
check ran on some row (results written before the checks existed give the table without them)."""


def check_columns(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The :data:`CHECK_COLUMNS` whose check ran on some row of ``summary``."""
    return [(head, key) for head, key in CHECK_COLUMNS if summary.get(key) is not None]


def format_markdown(summary: dict[str, Any], *, top: int = 10) -> str:
    """The summary as Markdown: the per-mode table, then labelled figures and transitions.

    Parameters
    ----------
    summary : dict
        The output of :func:`sedc.report.summarize`.
    top : int, default 10
        How many confusions and transitions to list.

    Returns
    -------
    str
        Markdown text ending with a newline. k is the number of removed segments of the
        counterfactuals found; evaluations and times are over all rows; each check's column
        (only those that ran) is over the rows it ran on, the mean area over the found rows.
    """
    parts = [mode_table(summary)]
    if summary.get("n_labelled"):
        parts.append(labelled_lines(summary, top))
    if summary.get("transitions"):
        parts.append(transition_lines(summary["transitions"], top))
    if summary.get("n_unverified"):
        parts.append(f"{summary['n_unverified']} counterfactual(s) did not verify: evaluated alone, "
                     "the model does not give the class found (see the verified_class of their rows).")
    if summary.get("n_errors"):
        parts.append(f"{summary['n_errors']} image(s) failed (see errors.jsonl).")
    return "\n\n".join(parts) + "\n"


def mode_table(summary: dict[str, Any]) -> str:
    """The table with one line per mode, plus an ``all`` line when there are several modes.

    When the rows were made by several searches (``by_search``), a first ``search`` column, and
    these lines for each search in turn.

    Parameters
    ----------
    summary : dict
        The output of :func:`sedc.report.summarize`.

    Returns
    -------
    str
        A Markdown table.
    """
    by_search = summary.get("by_search")
    checks = check_columns(summary)
    columns = ("search", *COLUMNS) if by_search else COLUMNS
    heads = [*columns, *(head for head, _ in checks)]
    lines = ["| " + " | ".join(heads) + " |",
             "|" + "|".join("---:" if c in RIGHT or c not in columns else "---" for c in heads) + "|"]
    for search, figures in (by_search or {None: summary}).items():
        lead = [] if search is None else [search.replace("|", "\\|")]
        for name, group in mode_groups(figures):
            cells = table_cells(name, group) + [percent(group.get(key)) for _, key in checks]
            lines.append("| " + " | ".join(lead + cells) + " |")
    return "\n".join(lines)


def mode_groups(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(mode, figures)`` per mode, then ``("all", summary)`` when there are several modes."""
    groups = list((summary.get("by_mode") or {}).items())
    if len(groups) != 1:
        groups.append(("all", summary))
    return groups


def table_cells(name: str, figures: dict[str, Any]) -> list[str]:
    """The cells of one table line (mode name and formatted figures)."""
    return [name.replace("|", "\\|"), str(figures.get("n_images", 0)),
            percent(figures.get("found_rate")), percent(figures.get("stopped_by_limit_rate")),
            fixed(figures.get("mean_segments"), 2), fixed(figures.get("median_segments"), 1),
            fixed(figures.get("mean_evaluations"), 1), fixed(figures.get("mean_time_s"), 2)]


def labelled_lines(summary: dict[str, Any], top: int) -> str:
    """Accuracy, explanations toward the truth and the most frequent confusions."""
    lines = [f"Accuracy: {percent(summary.get('accuracy'))} "
             f"({summary.get('n_correct', 0)} of {summary.get('n_labelled', 0)} images)."]
    toward = summary.get("misclassified_explained_toward_truth") or 0
    if toward:
        lines.append(f"Misclassifications explained toward their true class: {toward} "
                     f"({summary.get('misclassified_explained_toward_truth_found', 0)} found).")
    confusions = summary.get("confusions") or []
    if confusions:
        lines.append("\nMost frequent confusions (true -> predicted):")
        lines += [f"- {c['true']} -> {c['predicted']}: {c['count']}" for c in confusions[:top]]
    return "\n".join(lines)


def transition_lines(transitions: list[dict[str, Any]], top: int) -> str:
    """The most frequent original -> counterfactual class changes."""
    lines = ["Class transitions (original -> counterfactual):"]
    lines += [f"- {t['from']} -> {t['to']}: {t['count']}" for t in transitions[:top]]
    if len(transitions) > top:
        lines.append(f"- ... {len(transitions) - top} more in summary.json")
    return "\n".join(lines)


def percent(value: float | None) -> str:
    """``0.75`` -> ``"75.0 %"``; None -> ``"-"``."""
    return "-" if value is None else f"{100 * value:.1f} %"


def fixed(value: float | None, digits: int) -> str:
    """A number with ``digits`` decimals; None -> ``"-"``."""
    return "-" if value is None else f"{value:.{digits}f}"
