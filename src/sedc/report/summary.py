"""Summary figures of a results.jsonl: the content of ``summary.json``.

The functions here take the rows of ``results.jsonl`` as plain dicts and return plain,
JSON-serialisable dicts. They import nothing from the rest of sedc.

Conventions (also in :func:`summarize`'s docstring):

* One row is one (image, mode) pair: a run with several modes has one row per image and
  mode, and ``n_images`` counts rows. ``n_unique_images`` counts distinct ``image`` values.
* ``k`` (the number of removed segments) is only meaningful for a counterfactual that was
  found, so the k statistics are taken over the found rows only, as in the SEDC paper.
* Evaluation and time statistics are taken over all rows: a search that failed still cost
  its evaluations and time.
* "Stopped by a limit" counts the rows without a counterfactual whose stop reason is
  ``max_time`` or ``max_evals``; a found row keeps counting as found whatever its stop reason.
* Accuracy and confusions count each labelled image once; see :func:`labelled_figures`.
* A figure that cannot be computed (a mean over no rows) is ``None`` (``null`` in JSON).
* The checks after the search (``verified``, ``holds_under_every_fill``, ``irreducible``,
  ``transfers``) are counted over the rows where they ran (non-null), so a check that did not
  run has a rate of ``None``, never 0; the mean area removed is over the found rows.
* Rows made by different searches (their ``search`` field; rows without one were made by the
  exact search) are also summed up per search and mode (``by_search``), and only then: the
  summary of a run with one search is the same as before searches were recorded.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

LIMIT_REASONS = ("max_time", "max_evals")
"""The stop reasons that mean a search was cut short by a limit."""

STOP_REASONS = ("found", "exhausted", "max_time", "max_evals")
"""The stop reasons sedc writes, in the order reports list them."""

BASE_KEYS = ("n_images", "n_found", "found_rate", "mean_segments", "median_segments",
             "mean_evaluations", "mean_time_s")
"""The figures of the paper's table, present at the top level and in every ``by_mode`` entry."""

DEFAULT_SEARCH = "exact"
"""The search of a row that does not name one (rows written before results recorded it)."""


def summarize(rows: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """Summary figures of a run, overall and per mode.

    Parameters
    ----------
    rows : list of dict
        The rows of ``results.jsonl``. Keys that are absent are tolerated: labelled-run keys
        (``true_class``, ``true_label``, ``correct``) are used only where present, and unknown
        keys (``runtime``, ...) are ignored.
    errors : list of dict, optional
        The rows of ``errors.jsonl``; only their number is reported (``n_errors``).

    Returns
    -------
    dict
        ``n_images``: rows, i.e. (image, mode) pairs (an image explained in two modes
        counts twice); ``n_unique_images``: distinct ``image`` values;
        ``n_found``, ``found_rate`` (n_found / n_images);
        ``mean_segments``, ``median_segments``: k = ``len(segments)`` over found rows only;
        ``mean_evaluations``, ``median_evaluations``, ``mean_time_s``, ``median_time_s``,
        ``total_time_s``: over all rows;
        ``n_stopped_by_limit``, ``stopped_by_limit_rate``: rows without a counterfactual whose
        search was stopped by ``max_time`` or ``max_evals`` (a row can be found *and* carry a
        limit stop reason, when the limit struck as the counterfactual turned up: it counts as
        found, so found and limit rates never add up to more than 100 %);
        ``stop_reasons``: count per stop reason, as written (found or not);
        ``transitions``: ``[{"from": label, "to": label, "count": n}]`` from the original to
        the counterfactual label over found rows, by count (descending) then names;
        labelled figures (see :func:`labelled_figures`): ``n_labelled``, ``n_correct``,
        ``accuracy``, ``confusions``, ``n_misclassified``,
        ``misclassified_explained_toward_truth`` and its ``_found`` count;
        the checks' figures (see :func:`check_figures`): ``verified_rate``,
        ``holds_under_every_fill_rate``, ``irreducible_rate``, ``transfers_rate`` with their
        ``n_..._checked``, ``n_unverified``, ``n_fragile``, ``mean_area``;
        ``modes``: the modes in order of first appearance; ``by_mode``: mode -> the same
        keys, computed on that mode's rows (without ``by_mode``, ``modes`` and
        ``n_errors``); ``n_errors``: failed images.
        Only when the rows were made by more than one search: ``searches`` (in order of first
        appearance, see :func:`search_of`) and ``by_search``: search -> the same keys with
        ``modes`` and ``by_mode``, computed on that search's rows.
        Figures over no rows are None.
    """
    summary = mode_summary(rows)
    searches = list(dict.fromkeys(search_of(row) for row in rows))
    if len(searches) > 1:
        summary["searches"] = searches
        summary["by_search"] = {search: mode_summary([r for r in rows if search_of(r) == search])
                                for search in searches}
    summary["n_errors"] = len(errors or [])
    return summary


def mode_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`group_summary` of ``rows`` with ``modes`` and ``by_mode`` (see :func:`summarize`)."""
    summary = group_summary(rows)
    modes = list(dict.fromkeys(str(row.get("mode")) for row in rows))
    summary["modes"] = modes
    summary["by_mode"] = {mode: group_summary([r for r in rows if str(r.get("mode")) == mode])
                          for mode in modes}
    return summary


def search_of(row: dict[str, Any]) -> str:
    """The search that made a row: its ``search`` field, else :data:`DEFAULT_SEARCH`."""
    search = row.get("search")
    return DEFAULT_SEARCH if search is None else str(search)


def group_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of :func:`summarize` for one group of rows (no ``by_mode``).

    Parameters
    ----------
    rows : list of dict
        Rows of ``results.jsonl``.

    Returns
    -------
    dict
        See :func:`summarize`.
    """
    found = [row for row in rows if is_found(row)]
    ks = [len(row.get("removed") or []) for row in found]
    evals = numbers(row.get("n_evaluations") for row in rows)
    times = numbers(row.get("elapsed_s") for row in rows)
    reasons = Counter(str(row.get("stop_reason")) for row in rows)
    n_limit = sum(is_limit_stop(row) for row in rows)
    out: dict[str, Any] = {
        "n_images": len(rows),
        "n_unique_images": len({str(row.get("image")) for row in rows}),
        "n_found": len(found),
        "found_rate": ratio(len(found), len(rows)),
        "mean_segments": mean(ks),
        "median_segments": median(ks),
        "mean_evaluations": mean(evals),
        "median_evaluations": median(evals),
        "mean_time_s": mean(times),
        "median_time_s": median(times),
        "total_time_s": sum(times) if times else None,
        "n_stopped_by_limit": n_limit,
        "stopped_by_limit_rate": ratio(n_limit, len(rows)),
        "stop_reasons": stop_reason_counts(reasons),
        "transitions": transitions(found),
    }
    out.update(labelled_figures(rows))
    out.update(check_figures(rows))
    return out


CHECK_RATES = ("verified", "holds_under_every_fill", "irreducible", "transfers")
"""The yes/no check fields of a row whose rate :func:`check_figures` reports."""


def check_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the checks after the search found, over the rows each check ran on.

    Parameters
    ----------
    rows : list of dict
        Rows of ``results.jsonl``.

    Returns
    -------
    dict
        For each field of :data:`CHECK_RATES`: ``n_<field>_checked`` (rows where it is not
        null) and ``<field>_rate`` (the share of those where it is true; None when none);
        ``n_unverified`` (rows whose answer did not verify); ``n_fragile`` (found rows that do
        not hold under every fill or do not transfer); ``mean_area`` (the mean fraction of the
        image removed, over found rows that record it).
    """
    out: dict[str, Any] = {}
    for key in CHECK_RATES:
        values = [bool(row[key]) for row in rows if row.get(key) is not None]
        out[f"n_{key}_checked"] = len(values)
        out[f"{key}_rate"] = ratio(sum(values), len(values))
    out["n_unverified"] = sum(row.get("verified") is False for row in rows)
    out["n_fragile"] = sum(is_fragile(row) for row in rows)
    out["mean_area"] = mean(numbers(row.get("area") for row in rows if is_found(row)))
    return out


def is_fragile(row: dict[str, Any]) -> bool:
    """Whether a found counterfactual does not hold under every other fill or does not transfer
    to a second model (False when those checks did not run)."""
    return is_found(row) and (row.get("holds_under_every_fill") is False or row.get("transfers") is False)


def labelled_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, confusions and explanations toward the true class, for labelled rows.

    A row is labelled when it has a non-null ``true_class``. The prediction of an image does
    not depend on the fill mode, so accuracy and confusions count every image once (its
    first labelled row), however many modes explained it. The explanations toward the truth
    are counted per row (per mode): a misclassified row whose SEDC-T ``target`` is its
    ``true_class``.

    Parameters
    ----------
    rows : list of dict
        Rows of ``results.jsonl``.

    Returns
    -------
    dict
        ``n_labelled`` (distinct labelled images), ``n_correct``, ``accuracy``
        (n_correct / n_labelled, None without labelled rows), ``n_misclassified``,
        ``confusions`` (``[{"true": label, "predicted": label, "count": n}]`` over the
        misclassified images, by count then names), ``misclassified_explained_toward_truth``
        (rows) and ``misclassified_explained_toward_truth_found`` (those with a
        counterfactual found).
    """
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        if is_labelled(row):
            first.setdefault(str(row.get("image")), row)
    images = list(first.values())
    wrong = [row for row in images if not is_correct(row)]
    toward = [row for row in rows if is_toward_truth(row)]
    pairs = Counter((true_label(row), label(row, "original")) for row in wrong)
    return {
        "n_labelled": len(images),
        "n_correct": len(images) - len(wrong),
        "accuracy": ratio(len(images) - len(wrong), len(images)),
        "n_misclassified": len(wrong),
        "confusions": [{"true": t, "predicted": p, "count": n}
                       for (t, p), n in sorted(pairs.items(), key=count_then_names)],
        "misclassified_explained_toward_truth": len(toward),
        "misclassified_explained_toward_truth_found": sum(is_found(row) for row in toward),
    }


def transitions(found: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Count original -> counterfactual label pairs.

    Parameters
    ----------
    found : iterable of dict
        Rows whose counterfactual was found.

    Returns
    -------
    list of dict
        ``{"from": label, "to": label, "count": n}``, by count (descending) then names.
    """
    pairs = Counter((label(row, "original"), label(row, "new")) for row in found)
    return [{"from": a, "to": b, "count": n}
            for (a, b), n in sorted(pairs.items(), key=count_then_names)]


def count_then_names(item: tuple[tuple[str, str], int]) -> tuple[int, str, str]:
    """Sort key: count descending, then the two names ascending."""
    (a, b), n = item
    return (-n, a, b)


def stop_reason_counts(reasons: Counter) -> dict[str, int]:
    """Counts per stop reason: the four known ones always, then any other seen."""
    out = {reason: reasons.get(reason, 0) for reason in STOP_REASONS}
    out.update({reason: n for reason, n in sorted(reasons.items()) if reason not in out})
    return out


def label(row: dict[str, Any], which: str) -> str:
    """``row[which + "_label"]``, else the class id as text, else ``"?"``.

    Parameters
    ----------
    row : dict
        A results row.
    which : str
        ``"original"``, ``"new"``, ``"target"`` or ``"true"``.

    Returns
    -------
    str
        A printable class name.
    """
    name = row.get(f"{which}_label")
    if name is not None:
        return str(name)
    cls = row.get(f"{which}_class", row.get(which))
    return "?" if cls is None else str(cls)


def true_label(row: dict[str, Any]) -> str:
    """The true class's name (``true_label``, else its id)."""
    return label(row, "true")


def is_found(row: dict[str, Any]) -> bool:
    """Whether the row holds a counterfactual."""
    return bool(row.get("found"))


def is_labelled(row: dict[str, Any]) -> bool:
    """Whether the row comes from a labelled run (a non-null ``true_class``)."""
    return row.get("true_class") is not None


def is_correct(row: dict[str, Any]) -> bool | None:
    """``row["correct"]``, else ``original_class == true_class``; None when unlabelled."""
    if not is_labelled(row):
        return None
    if row.get("correct") is not None:
        return bool(row["correct"])
    return row.get("original_class") == row.get("true_class")


def is_toward_truth(row: dict[str, Any]) -> bool:
    """Whether a misclassified row was explained with its true class as SEDC-T target."""
    target = row.get("target")
    return (is_labelled(row) and is_correct(row) is False and target is not None
            and target == row.get("true_class"))


def is_limit_stop(row: dict[str, Any]) -> bool:
    """Whether the search ended without a counterfactual, stopped by ``max_time`` or
    ``max_evals``."""
    return not is_found(row) and row.get("stop_reason") in LIMIT_REASONS


def numbers(values: Iterable[Any]) -> list[float]:
    """The values that are finite real numbers (booleans, None, NaN dropped), as floats."""
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def mean(values: list[float] | list[int]) -> float | None:
    """Arithmetic mean, None for no values."""
    return float(statistics.fmean(values)) if values else None


def median(values: list[float] | list[int]) -> float | None:
    """Median (mean of the two middle values for an even count), None for no values."""
    return float(statistics.median(values)) if values else None


def ratio(part: int, whole: int) -> float | None:
    """``part / whole``, None when ``whole`` is 0."""
    return part / whole if whole else None
