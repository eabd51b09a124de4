"""``sedc benchmark``: time SEDC implementations against the original and check their answers.

:mod:`~sedc.benchmark.measure` (the timed model, runs, implementations),
:mod:`~sedc.benchmark.cases` (comparison, scaling, throughput), :mod:`~sedc.benchmark.report`
(statistics, tables, plots); the command line is :mod:`sedc.cli.benchmark`.
"""

from .cases import CASES
from .measure import IMPLEMENTATIONS, Answer, Context, Implementation, Photo, RunRecord, TimedModel
from .report import find_mismatches, format_summary, machine_info, summarize

__all__ = [
    "CASES",
    "IMPLEMENTATIONS",
    "Answer",
    "Context",
    "Implementation",
    "Photo",
    "RunRecord",
    "TimedModel",
    "find_mismatches",
    "format_summary",
    "machine_info",
    "summarize",
]
