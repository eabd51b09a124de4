"""Reports on a results folder: ``summary.json``, a Markdown table and ``report.html``.

A layer above the results: plain dicts (the rows of ``results.jsonl`` and ``errors.jsonl``)
in, text and files out. It imports nothing else from sedc.

>>> rows, errors = load_results("sedc-out")             # doctest: +SKIP
>>> print(format_markdown(summarize(rows, errors)))     # doctest: +SKIP
>>> write_report("sedc-out", rows, errors)              # doctest: +SKIP
PosixPath('sedc-out/report.html')
"""

from .html import REPORT_FILE, SUMMARY_FILE, write_report
from .loading import load_results, read_jsonl
from .markdown import format_markdown
from .summary import summarize

__all__ = [
           "REPORT_FILE",
           "SUMMARY_FILE",
           "format_markdown",
           "load_results",
           "read_jsonl",
           "summarize",
           "write_report",
]
