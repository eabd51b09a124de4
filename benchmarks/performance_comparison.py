#!/usr/bin/env python3
"""Compare SEDC implementations (the seed's ``performance_comparison.py``).

A thin wrapper around :func:`sedc.cli.benchmark.main`; ``sedc benchmark`` is the same command.
Run ``python benchmarks/performance_comparison.py --help`` for the options, for example::

    python benchmarks/performance_comparison.py --quick
    python benchmarks/performance_comparison.py --repeats 3 --json bench.json --plot bench.png --scaling
"""

import sys

from sedc.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
