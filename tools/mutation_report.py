"""Summarise a finished ``mutmut run`` (the ``mutants/`` folder): the score per file and the
names of the mutants that survived. ``make mutation`` prints this; docs/mutation.md keeps it.

    python tools/mutation_report.py [--survivors]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# mutmut's exit codes (mutmut/stats.py, mutmut 3.8): 1 and 3 killed, 0 survived, 36/24/152/255 and
# -24 timeout (a CPU-time limit: an endless loop), 33 and 5 no tests, -9/-11 killed by a signal.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          -9: "segfault", -11: "segfault", None: "not checked"}


def collect(root: Path = ROOT / "mutants") -> dict[str, Counter]:
    per_file: dict[str, Counter] = {}
    survivors: dict[str, list[str]] = {}
    for meta in sorted(root.glob("src/**/*.py.meta")):
        name = str(meta.relative_to(root))[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(STATUS.get(code, "suspicious") for code in codes.values())
        per_file[name] = counts
        survivors[name] = sorted(k for k, code in codes.items() if STATUS.get(code) in ("survived", "no tests"))
    return per_file, survivors


def score(counts: Counter) -> tuple[int, int, float]:
    """(caught, tested, percent): killed and timed-out mutants count as caught."""
    caught = counts["killed"] + counts["timeout"] + counts["segfault"]
    tested = sum(counts.values()) - counts["skipped"] - counts["not checked"]
    return caught, tested, 100.0 * caught / tested if tested else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args(argv)
    per_file, survivors = collect()
    if not per_file:
        print("no mutants/ folder with results: run `make mutation` first", file=sys.stderr)
        return 1
    total = Counter()
    print(f"{'file':<32} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'no tests':>8} {'score':>7}")
    for name, counts in per_file.items():
        total += counts
        caught, tested, pct = score(counts)
        print(f"{name:<32} {tested:>7} {counts['killed']:>7} {counts['timeout']:>7} {counts['survived']:>8} "
              f"{counts['no tests']:>8} {pct:>6.1f}%")
    caught, tested, pct = score(total)
    print(f"{'total':<32} {tested:>7} {total['killed']:>7} {total['timeout']:>7} {total['survived']:>8} "
          f"{total['no tests']:>8} {pct:>6.1f}%")
    other = {k: v for k, v in total.items() if k not in ("killed", "timeout", "survived", "no tests")}
    if other:
        print("other:", dict(other))
    if args.survivors:
        for name, keys in survivors.items():
            for key in keys:
                print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
