"""Explanations in Jupyter: the card of one explanation and :class:`Gallery`, a grid of many.

An :class:`~sedc.Explanation` shows itself in a notebook (``_repr_png_``: the figure of
:func:`~sedc.display.figure.plot`; ``_repr_html_``: :func:`card_html`). A list of results, as
:func:`sedc.explain_many` returns it, shows as a grid once wrapped: ``sedc.Gallery(results)``.
Everything is HTML with the figures inlined as base64 PNG, rendered on the Agg canvas (no pyplot).

The card's hook for more results: every key of ``explanation.to_dict()`` that is not one of the
schema's explanation fields (:data:`sedc.base.schema.EXPLANATION_FIELDS`), and every check that
ran (:data:`sedc.base.schema.CHECK_FIELDS`), is listed as a row of its own, a mapping value as one
``name: value`` line per entry.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Iterable, Sequence

from ..base.errors import InputError, InputTypeError
from ..base.schema import CHECK_FIELDS, EXPLANATION_FIELDS
from ..models.labels import class_name
from .figure import STOP_TEXT, check_explanation, figure_png, names_of, score_text

__all__ = ["Gallery", "card_html", "checks_of"]

_CARD_STYLE = ("font-family:sans-serif;font-size:13px;line-height:1.4;border:1px solid #ddd;"
               "border-radius:6px;padding:8px;max-width:980px;background:#fff;color:#222")
_ERROR_STYLE = ("font-family:sans-serif;font-size:13px;border:1px solid #e0a0a0;border-radius:6px;"
                "padding:8px;background:#fff5f5;color:#8a1f1f")


def card_html(explanation: Any, class_names: Sequence[str] | None = None, png: bytes | None = None,
              *, compact: bool = False) -> str:
    """One explanation as an HTML card: the figure, original → new class, cost and stop reason.

    Parameters
    ----------
    explanation : Explanation
    class_names : sequence of str or None
        None: the explanation's own (``"class 285"`` without any).
    png : bytes or None
        The figure, already rendered (an explanation passes its cached one); None renders it.
    compact : bool
        One line of facts under the figure (a :class:`Gallery` cell) instead of the full list.

    Returns
    -------
    str
    """
    check_explanation(explanation)
    names = names_of(explanation, class_names)
    png = figure_png(explanation, names) if png is None else png
    rows = _facts(explanation, names)
    if compact:
        body = f"<div>{' · '.join(value for _, value in rows)}</div>"
    else:
        body = "<table style='border-collapse:collapse'>" + "".join(
            f"<tr><td style='padding:1px 10px 1px 0;color:#666'>{key}</td><td>{value}</td></tr>"
            for key, value in rows) + "</table>"
    return (f"<div class='sedc-explanation' style='{_CARD_STYLE}'>"
            f"<div style='font-size:14px;margin-bottom:4px'>{_headline(explanation, names)}</div>"
            f"{_img(png)}{body}</div>")


def checks_of(explanation: Any) -> dict[str, Any]:
    """What the checks after the search found (:data:`sedc.base.schema.CHECK_FIELDS`, the ones
    that ran), and any key of ``explanation.to_dict()`` the schema does not know."""
    to_dict = getattr(explanation, "to_dict", None)
    row = to_dict() if callable(to_dict) else {}
    checks = {key: row[key] for key in CHECK_FIELDS if row.get(key) is not None}
    return {**checks, **{key: value for key, value in row.items() if key not in EXPLANATION_FIELDS}}


class Gallery:
    """Explanations shown as a grid in Jupyter (``_repr_html_``).

    Parameters
    ----------
    explanations : iterable of Explanation or sedc.ImageError
        E.g. what :func:`sedc.explain_many` returns; a failed image (an exception) is shown as
        an error cell.
    class_names : sequence of str or None
        None: each explanation's own.
    columns : int, default 2
        Cells per row.
    titles : sequence of str or None
        A caption above each cell (the photo's name, the fill, ...); as many as explanations.

    Examples
    --------
    >>> results = sedc.explain_many(photos, model, max_evals=300)   # doctest: +SKIP
    >>> sedc.Gallery(results, columns=2)                            # doctest: +SKIP
    """

    def __init__(self, explanations: Iterable[Any], class_names: Sequence[str] | None = None,
                 columns: int = 2, titles: Sequence[str] | None = None) -> None:
        self.explanations = list(explanations)
        for item in self.explanations:
            if not isinstance(item, BaseException):
                check_explanation(item)
        if not isinstance(columns, int) or isinstance(columns, bool) or columns < 1:
            raise InputError(f"columns must be a positive int; got {columns!r}")
        if isinstance(titles, str):
            raise InputTypeError("titles must be a sequence of str, one per explanation")
        if titles is not None and len(titles) != len(self.explanations):
            raise InputError(f"titles has {len(titles)} entries for {len(self.explanations)} explanations")
        self.class_names = class_names
        self.columns = columns
        self.titles = None if titles is None else [str(t) for t in titles]

    def __len__(self) -> int:
        return len(self.explanations)

    def __repr__(self) -> str:
        failed = sum(isinstance(item, BaseException) for item in self.explanations)
        return f"Gallery({len(self)} explanations, {failed} failed, columns={self.columns})"

    def _repr_html_(self) -> str:
        cells = [self._cell(i, item) for i, item in enumerate(self.explanations)]
        grid = (f"display:grid;grid-template-columns:repeat({self.columns},minmax(0,1fr));"
                "gap:8px;align-items:start")
        return f"<div class='sedc-gallery' style='{grid}'>{''.join(cells)}</div>"

    def _cell(self, position: int, item: Any) -> str:
        title = "" if self.titles is None else f"<div style='font-weight:bold'>{_text(self.titles[position])}</div>"
        if isinstance(item, BaseException):
            return f"<div style='{_ERROR_STYLE}'>{title}<b>failed</b>: {_text(str(item))}</div>"
        names = names_of(item, self.class_names)
        cached = getattr(item, "_png", None)
        png = cached(names) if callable(cached) else figure_png(item, names)
        return f"<div>{title}{card_html(item, names, png, compact=True)}</div>"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _headline(e: Any, names: Sequence[str] | None) -> str:
    before = f"<b>{_text(class_name(e.original_class, names))}</b> ({score_text(e.original_score)})"
    if not e.found:
        return f"{before} → no counterfactual"
    return f"{before} → <b>{_text(class_name(e.new_class, names))}</b> ({score_text(e.new_score)})"


def _facts(e: Any, names: Sequence[str] | None) -> list[tuple[str, str]]:
    removed = ", ".join(str(int(s)) for s in e.removed) or "none"
    method = "SEDC" if e.target is None else f"SEDC-T toward {_text(class_name(e.target, names))}"
    rows = [
        ("removed", f"{len(e.removed)} of {e.n_segments} segments ({removed})"),
        ("search", f"{_text(method)}, {_text(str(e.mode))} fill"),
        ("evaluations", f"{e.n_evaluations} in {float(e.elapsed):.2f} s"),
        ("stop", _text(STOP_TEXT.get(e.stop_reason, str(e.stop_reason)))),
    ]
    rows += [(_text(key), _value(value)) for key, value in checks_of(e).items()]
    return rows


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "<br>".join(f"{_text(str(k))}: {_value(v)}" for k, v in value.items())
    if isinstance(value, float):
        return score_text(value)
    return _text(str(value))


def _img(png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img style='width:100%;max-width:960px;display:block' src='data:image/png;base64,{data}'/>"


def _text(value: str) -> str:
    return html.escape(value, quote=True)
