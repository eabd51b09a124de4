#!/usr/bin/env python3
"""The quality and cost of the search strategies: ``sedc benchmark --search`` (sedc.benchmark.search).

    python benchmarks/search_quality.py [OPTIONS]      # sedc benchmark --search [OPTIONS]
    python benchmarks/search_quality.py --table FILE   # the tables of a saved --json FILE, again

Stage A's measurements (docs/benchmarks/search_quality.md) were made by the earlier version of this
script (git history, commit 8f163ae), which drove the state machines directly and also measured
fast's variants (prefix methods, windows, lookahead).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv[:1] == ["--table"] and len(argv) == 2:
        from sedc.benchmark.search import format_saved

        print(format_saved(json.loads(Path(argv[1]).read_text(encoding="utf-8"))["search"]))
        return 0
    from sedc.cli.benchmark import main as benchmark

    return benchmark(["--search", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
