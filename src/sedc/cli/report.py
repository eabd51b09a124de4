"""``sedc report DIR``: the report of a ``sedc explain`` run, from DIR/results.jsonl.

Writes DIR/report.html (a static page that opens from disk) and DIR/summary.json, or prints the
summary table as Markdown (``--format markdown``). ``sedc explain ... --report`` calls
:func:`write_run_report` at the end of its run. The page and the figures are made by
:mod:`sedc.report`; this module only reads the result files and wires the command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..base.schema import ERRORS_FILE, RESULTS_FILE, read_rows
from .common import EXIT_OK

FORMATS = ("html", "markdown")

REPORT_DESCRIPTION = f"""\
Sum up a 'sedc explain' run: read DIR/{RESULTS_FILE} (and DIR/{ERRORS_FILE}) and write
DIR/report.html, a static page that opens from disk without network, and DIR/summary.json.
"""

REPORT_EPILOG = """\
report.html holds, per mode, the SEDC paper's table (images, counterfactual found, stopped by a
limit, mean and median number of removed regions k, mean evaluations, mean time), per search and
mode when the rows were made by several searches (rows without a search are exact); for runs with
--ground-truth the accuracy, the most frequent true -> predicted confusions and the
misclassifications explained toward their true class; the class transitions (original ->
counterfactual class: what the model falls back to); a k histogram, time and evaluations against
the number of regions; and a gallery of every image with filters and sorting, linking to its figure.

summary.json holds n_images, n_found, found_rate, mean_segments, median_segments,
mean_evaluations, mean_time_s, by_mode (the same keys per mode) and transitions
(a list of {from, to, count}); with several searches also searches and by_search (the same keys
and by_mode, per search).

--format markdown prints the summary table instead (for a terminal or a CI log) and writes nothing.

examples:
  sedc report sedc-out
  sedc report sedc-out --format markdown
  sedc explain val/ --ground-truth folders --target true --report   explain, then report
"""


def add_report_parser(commands: Any) -> None:
    """``sedc report`` and its options."""
    p = commands.add_parser("report", help="sum up a 'sedc explain' run: report.html and summary.json",
                            description=REPORT_DESCRIPTION, epilog=REPORT_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, metavar="DIR",
                   help=f"the --out folder of 'sedc explain' (holding {RESULTS_FILE})")
    p.add_argument("--format", choices=FORMATS, default="html",
                   help="html (default): write DIR/report.html and DIR/summary.json; markdown: "
                        "print the summary table")


def run_report(args: argparse.Namespace) -> int:
    """``sedc report DIR``."""
    rows, errors = read_run(args.folder)
    if args.format == "markdown":
        from ..report import format_markdown, summarize

        print(format_markdown(summarize(rows, errors)))
        return EXIT_OK
    write_run_report(args.folder, rows, errors)
    return EXIT_OK


def read_run(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The result rows and error rows of the run in ``folder``; usage error without results."""
    if not (Path(folder) / RESULTS_FILE).is_file():
        raise UsageError(f"no {RESULTS_FILE} in '{folder}': give the --out folder of a "
                         "'sedc explain' run")
    return read_file(Path(folder) / RESULTS_FILE), read_file(Path(folder) / ERRORS_FILE)


def read_file(path: Path) -> list[dict[str, Any]]:
    """The rows of one result file (read only: a run may still be appending to it); a warning on
    stderr names the lines that are not rows."""
    try:
        found = read_rows(path)
    except OSError as err:
        raise UsageError(f"cannot read '{path}': {err}") from None
    if found.skipped:
        lines = ", ".join(map(str, found.skipped[:5])) + (", ..." if len(found.skipped) > 5 else "")
        print(f"sedc report: warning: {path}: skipped {len(found.skipped)} line(s) that are not result "
              f"rows (line {lines})", file=sys.stderr)
    return found.rows


def write_run_report(folder: Path, rows: list[dict[str, Any]] | None = None,
                     errors: list[dict[str, Any]] | None = None, quiet: bool = False) -> Path:
    """Write ``folder``/report.html and summary.json (reading the result files when not given)."""
    from ..report import SUMMARY_FILE, write_report

    if rows is None:
        rows, errors = read_run(folder)
    page = Path(write_report(Path(folder), rows, errors=errors))
    if not quiet:
        print(f"Report: {page}")
        print(f"Summary: {page.parent / SUMMARY_FILE}")
    return page
