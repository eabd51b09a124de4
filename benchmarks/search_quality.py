#!/usr/bin/env python3
"""Quality and cost of the search strategies (issue 18): exact, fast, beam on real photos.

Runs each strategy's state machine (``sedc.core.strategies``) against the built-in
EfficientNet-Lite0 (on ONNX Runtime by default: ``sedc.accelerate``) on scikit-image photos
resized to 224×224, segmented by quickshift (the paper's setting) and by SLIC with about 100
segments, blur fill, plain SEDC (and SEDC-T toward the image's second class: ``--targets second``),
every run capped at ``--max-evals`` model evaluations (the image included).

What is counted is deterministic: evaluations (the sets a strategy asks the model to score, the
unperturbed image included), and model calls in two senses:

- **rounds**: sequential batched model calls when every step's candidates fit in one batch (a
  strategy's step is the set of candidates it can hand out before it needs their scores);
- **calls@B**: actual model calls at batch size B: each step of s candidates costs ceil(s / B).

Scores are cached per (photo, segmentation) across strategies (each set is scored once whoever
asks; each strategy still counts every set *it* asked for), so all strategies see the same score
for the same set. Time is not measured.

    python benchmarks/search_quality.py --json bench-out/search_quality.json
    python benchmarks/search_quality.py --summarize bench-out/search_quality.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# name -> (constructor, keywords)
VARIANTS = {
    "exact": ("exact", {}),
    "fast": ("fast", {}),  # the default: gallop, every prefix below the bisection checked
    "fast-la4": ("fast", {"lookahead": 4}),
    "fast-w4": ("fast", {"window": 4}),
    "fast-w4-la4": ("fast", {"window": 4, "lookahead": 4}),
    "fast-all": ("fast", {"prefix": "all"}),
    "fast-all-la4": ("fast", {"prefix": "all", "lookahead": 4}),
    "beam1": ("beam", {"width": 1}),
    "beam2": ("beam", {"width": 2}),
    "beam4": ("beam", {"width": 4}),
}
DEFAULT_VARIANTS = tuple(VARIANTS)
SEGMENTATIONS = {
    "quickshift": ("quickshift", {}),
    "slic100": ("slic", {"n_segments": 100}),
}
BATCHES = (16, 64)


def _gray(name):
    return lambda data: data.__getattribute__(name)()


PHOTOS = {
    # natural RGB photos
    "astronaut": lambda d: d.astronaut(),
    "astronaut_face": lambda d: d.astronaut()[20:260, 140:380],
    "chelsea": lambda d: d.chelsea(),  # (data.cat() is the same photo)
    "coffee": lambda d: d.coffee(),
    "rocket": lambda d: d.rocket(),
    "motorcycle": lambda d: d.stereo_motorcycle()[0],
    "hubble_deep_field": lambda d: d.hubble_deep_field(),
    "immunohistochemistry": lambda d: d.immunohistochemistry(),
    "retina": lambda d: d.retina(),
    # grey photos, as RGB
    "camera": _gray("camera"),
    "coins": _gray("coins"),
    "clock": _gray("clock"),
    "moon": _gray("moon"),
    "brick": _gray("brick"),
    "gravel": _gray("gravel"),
    "grass": _gray("grass"),
}


def load_photo(name: str, size: int = 224) -> np.ndarray:
    from skimage import data, transform

    image = PHOTOS[name](data)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = transform.resize(image[..., :3], (size, size), anti_aliasing=True)
    return np.clip(image, 0, 1).astype(np.float32)


class CachedScorer:
    """Scores (float32 rows of K) of segment sets of one prepared image, each set scored once."""

    def __init__(self, prepared, evaluator, chunk: int = 64) -> None:
        self.prepared, self.evaluator, self.chunk = prepared, evaluator, chunk
        self.cache: dict[int, np.ndarray] = {}
        self.n_scored = 0

    def rows(self, sets) -> np.ndarray:
        missing = [b for b in dict.fromkeys(sets) if b not in self.cache]
        for start in range(0, len(missing), self.chunk):
            part = missing[start:start + self.chunk]
            with torch.inference_mode():
                if part == [0]:
                    batch = self.prepared.image
                else:
                    batch = self.prepared.composer.compose(part)
                scores = self.evaluator.forward(batch).float().cpu().numpy()
            for b, row in zip(part, scores):
                self.cache[b] = row
            self.n_scored += len(part)
        return np.stack([self.cache[b] for b in sets]) if sets else np.zeros((0, 1), np.float32)


def scores_for(scorer, sets, c, t):
    from sedc.core.search import Scores

    rows = scorer.rows(sets)
    predicted = rows.argmax(axis=1)  # on float32, first maximum on ties, as the engine
    idx = np.arange(len(rows))
    return Scores(predicted.astype(np.int64), rows[idx, predicted].astype(np.float64),
                  rows[:, c].astype(np.float64), rows[:, t].astype(np.float64))


def is_cf(predicted, c, target):
    return predicted != c if target is None else predicted == target


def drive(variant, scorer, n_segments, c, p, target, max_evals):
    """Run one strategy to the end like ``Job`` (the image counts one evaluation); whole steps."""
    from sedc.core.beam import Beam
    from sedc.core.fast import Fast
    from sedc.core.strategies import make_search

    name, kw = VARIANTS[variant]
    if name == "fast":
        search = Fast(n_segments, c, p, target, **kw)
    elif name == "beam":
        search = Beam(n_segments, c, p, target, **kw)
    else:
        search = make_search(name, n_segments, c, p, target)
    steps, evals = [], 1
    t = c if target is None else target
    if n_segments < 2:
        search.done, search.stop_reason = True, "exhausted"
    while not search.done:
        budget = max_evals - evals
        if budget <= 0:
            search.stop("max_evals")
            break
        sets = search.take(min(search.available(), budget))
        search.feed(sets, scores_for(scorer, sets, c, t))
        steps.append(len(sets))
        evals += len(sets)
    best = search.best
    record = {"variant": variant, "evals": evals, "rounds": len(steps), "steps": steps,
              "stop_reason": search.stop_reason, "found": best is not None,
              "k": None if best is None else bin(best.bits).count("1"),
              "bits": None if best is None else hex(best.bits),
              "new_class": None if best is None else int(best.predicted)}
    for b in BATCHES:
        record[f"calls@{b}"] = sum(math.ceil(s / b) for s in steps)
    if isinstance(search, Fast):
        record["fell_back"] = search.fell_back
    if best is not None:  # irreducible? (drops scored outside the search, not counted)
        drops = [best.bits ^ (1 << j) for j in range(n_segments) if best.bits >> j & 1]
        drops = [d for d in drops if d]
        if drops:
            predicted = scorer.rows(drops).argmax(axis=1)
            record["irreducible"] = not any(is_cf(int(q), c, target) for q in predicted)
        else:
            record["irreducible"] = True
    return record


def run(args) -> list[dict]:
    import sedc
    import sedc.models
    from sedc.core.engine import prepare
    from sedc.core.evaluation import Evaluator

    model = sedc.models.load()
    classifier = model.module
    if args.runtime == "onnxruntime":
        classifier = sedc.accelerate(model.module, (3, 224, 224))
    device = torch.device("cpu")
    evaluator = Evaluator(classifier, device, batch_size=64)
    records = []
    for photo in args.photos:
        image = load_photo(photo)
        for seg_name in args.segmentations:
            method, params = SEGMENTATIONS[seg_name]
            segments = sedc.segment(image, method, **params)
            prepared = prepare(image, segments, args.mode, device, seed=0)
            scorer = CachedScorer(prepared, evaluator)
            row = scorer.rows([0])[0]
            c = int(row.argmax())
            p = float(row[c])
            second = int(np.argsort(-row, kind="stable")[1])
            n = len(prepared.segment_ids)
            for target in [None if t == "none" else second for t in args.targets]:
                for variant in args.variants:
                    start = time.perf_counter()
                    rec = drive(variant, scorer, n, c, p, target, args.max_evals)
                    rec.update(photo=photo, segmentation=seg_name, mode=args.mode, n_segments=n, target=target,
                               original_class=c, label=model.class_names[c],
                               new_label=None if rec["new_class"] is None else model.class_names[rec["new_class"]])
                    records.append(rec)
                    print(f"{photo:22s} {seg_name:10s} N={n:3d} {'SEDC-T' if target is not None else 'SEDC  '} "
                          f"{variant:9s} {rec['stop_reason']:9s} k={rec['k']} evals={rec['evals']} "
                          f"rounds={rec['rounds']} ({time.perf_counter() - start:.1f}s, "
                          f"{scorer.n_scored} scored)", file=sys.stderr, flush=True)
                    if args.json:
                        write(args.json, records, args)
    return records


def write(path, records, args) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"max_evals": args.max_evals, "runtime": args.runtime, "mode": args.mode,
            "batches": list(BATCHES), "torch": torch.__version__}
    path.write_text(json.dumps({"meta": meta, "records": records}, indent=1))


# -- the summary -----------------------------------------------------------------------------

def _median(values):
    return statistics.median(values) if values else float("nan")


def _case(r):
    return (r["photo"], r.get("mode", "blur"), r["target"] is not None)


def _table(group: list[dict]) -> tuple[list[str], dict, list]:
    """The strategy table of ``group`` (runs paired with exact's by photo, mode and target)."""
    by: dict[str, dict] = {}
    for r in group:
        by.setdefault(r["variant"], {})[_case(r)] = r
    exact = by.get("exact", {})
    cases = sorted(exact)
    judged = [cs for cs in cases if exact[cs]["found"] and exact[cs]["k"] >= 2]
    out = ["| strategy | found (all) | found (judged) | k mean / median | Δk median | Δk ≤ 0 | Δk < 0 | "
           "evals Σ | × exact | evals median | ratio median | rounds Σ | × exact | calls@16 Σ | × exact | "
           "calls@64 Σ | × exact | irreducible | fell back |",
           "|" + " --- |" * 19]
    base = {m: sum(exact[cs][m] for cs in judged) for m in ("evals", "rounds", "calls@16", "calls@64")}
    for variant in [v for v in VARIANTS if v in by]:
        runs = by[variant]
        jr = [runs[cs] for cs in judged if cs in runs]
        ks = [r["k"] for r in jr if r["found"]]
        diffs = [runs[cs]["k"] - exact[cs]["k"] for cs in judged if cs in runs and runs[cs]["found"]]
        tot = {m: sum(r[m] for r in jr) for m in base}
        per_case = [runs[cs]["evals"] / exact[cs]["evals"] for cs in judged if cs in runs]
        irr = [r.get("irreducible") for r in jr if r["found"]]
        fell = [r.get("fell_back") for r in jr if "fell_back" in r]

        def ratio(m):
            return f"{tot[m] / base[m]:.2f}" if base[m] else "-"

        out.append(
            f"| {variant} | {sum(runs[cs]['found'] for cs in cases if cs in runs)}/{len(cases)} | "
            f"{len(ks)}/{len(judged)} | {(sum(ks) / len(ks)) if ks else float('nan'):.2f} / {_median(ks)} | "
            f"{_median(diffs)} | {sum(d <= 0 for d in diffs)}/{len(diffs)} | {sum(d < 0 for d in diffs)}/{len(diffs)} | "
            f"{tot['evals']} | {ratio('evals')} | {_median([r['evals'] for r in jr])} | {_median(per_case):.2f} | "
            f"{tot['rounds']} | {ratio('rounds')} | {tot['calls@16']} | {ratio('calls@16')} | "
            f"{tot['calls@64']} | {ratio('calls@64')} | "
            f"{sum(bool(x) for x in irr)}/{len(irr)} | {sum(bool(x) for x in fell) if fell else '-'} |")
    return out, by, judged


BUCKETS = ((2, 2), (3, 4), (5, 10 ** 6))


def _by_depth(by: dict, judged: list) -> list[str]:
    """Evaluations and rounds over exact's, totals per bucket of exact's k."""
    exact = by["exact"]
    names = [f"k={lo}" if lo == hi else (f"k={lo}..{hi}" if hi < 10 ** 6 else f"k>={lo}") for lo, hi in BUCKETS]
    counts = [sum(lo <= exact[cs]["k"] <= hi for cs in judged) for lo, hi in BUCKETS]
    out = ["\nby exact's k (evals Σ × exact / rounds Σ × exact):\n",
           "| strategy | " + " | ".join(f"{n} ({c} cases)" for n, c in zip(names, counts)) + " |",
           "|" + " --- |" * (len(BUCKETS) + 1)]
    for variant in [v for v in VARIANTS if v in by]:
        cells = []
        for lo, hi in BUCKETS:
            cs = [c for c in judged if lo <= exact[c]["k"] <= hi and c in by[variant]]
            e = sum(exact[c]["evals"] for c in cs)
            r = sum(exact[c]["rounds"] for c in cs)
            cells.append(f"{sum(by[variant][c]['evals'] for c in cs) / e:.2f} / "
                         f"{sum(by[variant][c]['rounds'] for c in cs) / r:.2f}" if cs else "-")
        out.append(f"| {variant} | " + " | ".join(cells) + " |")
    return out


def summarize(records: list[dict], max_evals: int) -> str:
    if not any(r["variant"] == "exact" for r in records):
        return "(no exact runs to compare with: summarize this run together with one that has them)"
    out = ["Judged: the cases (photo, fill, SEDC or SEDC-T) where exact found k >= 2 within the cap. "
           "Δk = k − k_exact per case (cases both found). Σ: totals over the judged cases; × exact: "
           "that total over exact's. ratio median: the median over judged cases of evals / exact's. "
           "rounds: sequential model calls with unlimited batches; calls@B: model calls at batch size B. "
           "found (all): over every case, cut by the cap or not."]
    for seg in sorted({r["segmentation"] for r in records}):
        group = [r for r in records if r["segmentation"] == seg]
        table, by, judged = _table(group)
        cases = sorted(by.get("exact", {}))
        out.append(f"\n## {seg}, pooled: {len(cases)} cases ({len({c[0] for c in cases})} photos × "
                   f"{sorted({c[1] for c in cases})} × {sorted({'SEDC-T' if c[2] else 'SEDC' for c in cases})}), "
                   f"{len(judged)} judged, cap {max_evals}\n")
        out.extend(table)
        out.extend(_by_depth(by, judged))
    keys = sorted({(r.get("mode", "blur"), r["segmentation"], r["target"] is not None) for r in records})
    for mode, seg, targeted in keys:
        group = [r for r in records if r.get("mode", "blur") == mode and r["segmentation"] == seg
                 and (r["target"] is not None) == targeted]
        table, by, judged = _table(group)
        exact = by.get("exact", {})
        cases = sorted(exact)
        ns = sorted(exact[cs]["n_segments"] for cs in cases)
        out.append(f"\n### {mode}, {seg}, {'SEDC-T toward the 2nd class' if targeted else 'SEDC'}: "
                   f"{len(cases)} photos, N {ns[0]}..{ns[-1]} (median {_median(ns)}), "
                   f"{len(judged)} judged\n")
        out.extend(table)
        out.append("\nper photo (k / evaluations / rounds; – none found, * cut by the cap):\n")
        variants = [v for v in VARIANTS if v in by]
        out.append("| photo | N | " + " | ".join(variants) + " |")
        out.append("|" + " --- |" * (len(variants) + 2))
        for cs in cases:
            cells = []
            for v in variants:
                r = by[v].get(cs)
                star = "" if r is None or r["stop_reason"] != "max_evals" else "*"
                cells.append("" if r is None else f"{r['k'] if r['found'] else '–'}{star} / {r['evals']} / {r['rounds']}")
            out.append(f"| {cs[0]} | {exact[cs]['n_segments']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=list(PHOTOS))
    parser.add_argument("--segmentations", nargs="+", default=list(SEGMENTATIONS), choices=list(SEGMENTATIONS))
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-evals", type=int, default=1500)
    parser.add_argument("--mode", default="blur", help="the fill (default blur)")
    parser.add_argument("--targets", nargs="+", choices=("none", "second"), default=["none"],
                        help="none: SEDC; second: SEDC-T toward the image's second class")
    parser.add_argument("--runtime", choices=("onnxruntime", "torch"), default="onnxruntime")
    parser.add_argument("--json", help="write every run here (rewritten after each run)")
    parser.add_argument("--summarize", metavar="JSON", nargs="+", help="only print the summary of saved runs")
    args = parser.parse_args(argv)
    if args.summarize:
        saved = [json.loads(Path(path).read_text()) for path in args.summarize]
        print(summarize([r for run in saved for r in run["records"]], saved[0]["meta"]["max_evals"]))
        return 0
    torch.set_num_threads(1)
    records = run(args)
    print(summarize(records, args.max_evals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
