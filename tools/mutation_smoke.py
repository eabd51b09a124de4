"""A few known mutants of the core, each of which some fast test must kill (< 1 minute).

``make test`` runs this after the suite: it is the quick subset of ``make mutation`` (mutmut,
docs/mutation.md), pinned to bugs that once went uncaught or that only one test catches. Each
mutant is applied to a copy of ``src/sedc`` in a temporary folder (the text to replace must occur
exactly once, so a mutant that no longer matches the code fails loudly instead of passing), and
the named tests run against that copy; the mutant must make them fail.

    python tools/mutation_smoke.py            # all mutants, two at a time
    python tools/mutation_smoke.py --list
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROPS = "tests/test_properties.py"
SEARCH = "tests/test_search.py"
REFERENCE = "tests/test_reference.py"
SEED = "tests/test_seed.py"

# (name, file under src/sedc, text, replacement, tests that must fail)
MUTANTS = [
    ("stop drops the counterfactual found in the current step", "core/search.py",
     "        if self._step_found:\n            self.best = self.choose(self._step_found)\n"
     "        self.done, self.stop_reason = True, reason",
     "        self.done, self.stop_reason = True, reason",
     [f"{PROPS}::test_a_limit_only_truncates_the_evaluated_sets"]),
    ("the pruner does one pass", "core/search.py",
     "        if self._found and self._next_step():\n            return\n",
     "", [f"{PROPS}::test_pruning_ends_on_an_irreducible_counterfactual"]),
    ("the reference expands the tied entry that joined last", "reference/original.py",
     "key=lambda i: (P_sets_to_expand_on[i], -i)", "key=lambda i: (P_sets_to_expand_on[i], i)",
     [f"{REFERENCE}::test_reference_tie_rule_on_its_own"]),
    ("frontier ties go to the entry that joined last", "core/search.py",
     "(-self._priority(original, target), self._joined, bits)",
     "(-self._priority(original, target), -self._joined, bits)",
     [f"{SEARCH}::test_frontier_ties_across_steps_go_to_the_entry_that_joined_first"]),
    ("the answer is the smallest drop", "core/search.py",
     "return min(found, key=lambda cf: cf.original)", "return max(found, key=lambda cf: cf.original)",
     [f"{PROPS}::test_search_is_the_same_whatever_the_take_and_feed_sizes"]),
    ("create_explanation_mask returns zeros", "core/seed.py",
     "return tensor[0].permute(1, 2, 0).numpy() * inside[:, :, None]",
     "return tensor[0].permute(1, 2, 0).numpy() * 0", [f"{SEED}::test_seed_helpers_by_hand"]),
]


def run_one(mutant, src: Path, timeout: float) -> tuple[str, str, float]:
    name, rel, old, new, tests = mutant
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sedc-mutant-") as tmp:
        copy = Path(tmp) / "src" / "sedc"
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
        path = copy / rel
        text = path.read_text()
        if text.count(old) != 1:
            return name, f"STALE (the text to mutate occurs {text.count(old)} times in {rel})", 0.0
        path.write_text(text.replace(old, new))
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"), HYPOTHESIS_PROFILE="mutation",
                   PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return name, "killed (timeout)", time.perf_counter() - start
    outcome = "killed" if rc == 1 else ("SURVIVED" if rc == 0 else f"ERROR (pytest exit {rc})")
    return name, outcome, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    args = parser.parse_args(argv)
    if args.list:
        for name, rel, *_ in MUTANTS:
            print(f"{rel}: {name}")
        return 0
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda m: run_one(m, ROOT / "src" / "sedc", args.timeout), MUTANTS))
    for name, outcome, seconds in results:
        print(f"{outcome:<18} {seconds:5.1f}s  {name}")
    bad = [r for r in results if not r[1].startswith("killed")]
    print(f"mutation smoke: {len(results) - len(bad)}/{len(results)} killed in {time.perf_counter() - start:.0f}s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
