"""``sedc benchmark --search``: the quality and cost of the search strategies on real photos.

Every strategy (exact, fast, beam(2), beam(4)) explains the same scikit-image photos through
``sedc.explain`` (the engine users run), at two segmentations: quickshift (the paper's) and SLIC
with ``n_segments=100``. What is counted comes from the explanations themselves: found, k (the
number of segments removed), ``n_evaluations``, ``n_model_calls`` at a fixed batch size, and
*rounds*: ``n_model_calls`` when every step fits in one batch (the sequential calls a GPU with
large batches pays for). Whether the answer is irreducible is checked with extra model calls
that are not counted.

The model scores each distinct image once (:class:`CachedModel`, keyed by the image's bytes):
the strategies share the sets they have in common, and a rerun is free. So time is **estimated,
not measured per run**: every model call that computes is timed, ``seconds = a + b * batch`` is
fitted to them (least squares), and a run's time is that sum over its calls. "Found within
15 s" (the paper's limit) reruns the search with ``max_evals`` set to the evaluations of the
calls that start before 15 estimated seconds, which is where ``max_time=15`` would stop it.

Strategies are judged on the cases where exact found a counterfactual with k >= 2 (with k = 1
every strategy is exact's first step); the found rates count every case.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .measure import RULE, Context, synchronize

STRATEGIES = (("exact", None), ("fast", None), ("beam", 2), ("beam", 4))
SEGMENTATIONS = {"quickshift": ("quickshift", {}), "slic100": ("slic", {"n_segments": 100})}
#: scikit-image's photos that sample_photo names (the 16 of docs/benchmarks/search_quality.md
#: but the astronaut's face and the motorcycle, which are crops of a photo)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "camera", "coins", "clock", "moon", "brick", "gravel", "grass")
QUICK_PHOTOS = ("rocket",)  # k = 2 in the quick mode (mean): every strategy does some work
TARGETS = ("none", "second")  # plain SEDC; SEDC-T toward the image's second most likely class
TIME_LIMIT = 15.0  # seconds: the SEDC paper's limit
MAX_EVALS = 2000  # a safeguard: "no limit" runs stop here (counted in the table when reached)
BATCH = 16


# --------------------------------------------------------------------------------------------
# The model: each distinct image scored once, its computing calls timed
# --------------------------------------------------------------------------------------------

class CachedModel:
    """Scores (B, K) of a batch, computing only the images not scored before (by their bytes).

    Attributes
    ----------
    sizes : list of int
        The batch size of every call since :meth:`start` (one run's model calls).
    timed : list of (int, float)
        (images computed, seconds) of every call that ran the model.
    """

    def __init__(self, model: Callable[[torch.Tensor], Any], device: torch.device, chunk: int = 64) -> None:
        self.model, self.device, self.chunk = model, device, chunk
        self.cache: dict[bytes, torch.Tensor] = {}
        self.sizes: list[int] = []
        self.timed: list[tuple[int, float]] = []

    def start(self) -> None:
        """Start counting a new run's calls."""
        self.sizes = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        keys = [hashlib.blake2b(row.detach().cpu().numpy().tobytes(), digest_size=16).digest() for row in x]
        missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if missing:
            rows = {k: i for i, k in reversed(list(enumerate(keys)))}  # first row of each key
            for start in range(0, len(missing), self.chunk):
                part = missing[start:start + self.chunk]
                self._compute(part, x[[rows[k] for k in part]])
        return torch.stack([self.cache[k] for k in keys]).to(x.device)

    def _compute(self, keys: list[bytes], batch: torch.Tensor) -> None:
        from ..base.outputs import to_scores

        synchronize(self.device)
        started = time.perf_counter()
        with torch.inference_mode():
            scores = to_scores(self.model(batch)).float()
        synchronize(self.device)
        self.timed.append((len(keys), time.perf_counter() - started))
        for key, row in zip(keys, scores.cpu()):
            self.cache[key] = row


@dataclass
class TimeModel:
    """Seconds of a model call of B images: ``a + b * B``, fitted to the timed calls."""

    a: float
    b: float
    n_calls: int = 0

    @classmethod
    def fit(cls, timed: Sequence[tuple[int, float]]) -> "TimeModel":
        """Least squares over (images, seconds); ``a`` is kept >= 0 (else a per-image cost only)."""
        timed = list(timed[1:]) or list(timed)  # the first call pays one-off costs
        sizes = np.array([n for n, _ in timed], float)
        seconds = np.array([s for _, s in timed], float)
        if len(set(sizes)) > 1:
            b, a = np.polyfit(sizes, seconds, 1)
            if a >= 0 and b > 0:
                return cls(float(a), float(b), len(timed))
        return cls(0.0, float(seconds.sum() / sizes.sum()), len(timed))

    def seconds(self, sizes: Sequence[int]) -> float:
        return sum(self.a + self.b * n for n in sizes)

    def evals_within(self, sizes: Sequence[int], limit: float) -> int | None:
        """The evaluations done by ``max_time=limit`` (the clock starts after the image's call,
        a call starts only before the limit); None when every call starts in time."""
        spent, evals = 0.0, sizes[0]
        for n in sizes[1:]:
            if spent >= limit:
                return evals
            spent += self.a + self.b * n
            evals += n
        return None


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One photo at one segmentation, one fill and one target (None: plain SEDC)."""

    photo: str
    segmentation: str
    mode: str
    target: int | None
    image: np.ndarray = field(repr=False)
    segments: np.ndarray = field(repr=False)

    @property
    def key(self) -> tuple:
        return (self.photo, self.segmentation, self.mode, self.target is not None)


def explain_case(model: CachedModel, case: Case, search: str, width: int | None,
                 **options: Any) -> tuple[Any, list[int]]:
    """``sedc.explain`` of the case with a strategy; its explanation and its calls' batch sizes."""
    from ..core.explain import explain

    model.start()
    e = explain(case.image, model, case.segments, mode=case.mode, target=case.target, search=search,
                beam_width=width, device=model.device, channels_last=False, **options)
    return e, list(model.sizes)


def irreducible(model: CachedModel, case: Case, e: Any) -> bool:
    """Whether no single segment of the answer can be dropped (model calls not counted)."""
    if len(e.removed) < 2:
        return True
    drops = []
    for label in e.removed:
        image = e.perturbed_image.clone()
        pixels = torch.from_numpy(case.segments == label)
        image[..., pixels] = e.image[..., pixels]
        drops.append(image)
    predicted = model(torch.cat(drops).to(model.device)).argmax(dim=1).tolist()
    if case.target is None:
        return all(p == e.original_class for p in predicted)
    return all(p != case.target for p in predicted)


def run_case(model: CachedModel, case: Case, search: str, width: int | None, batch: int, cap: int) -> dict:
    """One strategy on one case: the counts at batch ``batch`` and with unlimited batches."""
    e, sizes = explain_case(model, case, search, width, batch_size=batch, max_evals=cap)
    rounds, _ = explain_case(model, case, search, width, batch_size=max(4096, batch), max_evals=cap)
    return {"photo": case.photo, "segmentation": case.segmentation, "mode": case.mode, "target": case.target,
            "n_segments": e.n_segments, "search": e.search, "found": e.found,
            "k": len(e.removed) if e.found else None,
            "new_class": e.new_class, "stop_reason": e.stop_reason, "capped": e.stop_reason == "max_evals",
            "evaluations": e.n_evaluations, "model_calls": e.n_model_calls, "rounds": rounds.n_model_calls,
            "sizes": sizes, "irreducible": irreducible(model, case, e) if e.found else None,
            "batch_agrees": (rounds.removed, rounds.n_evaluations) == (e.removed, e.n_evaluations)}


def within_limit(model: CachedModel, case: Case, record: dict, times: TimeModel, limit: float) -> None:
    """Add the estimated seconds and what ``max_time=limit`` would have found (reruns hit the cache)."""
    record["seconds"] = times.seconds(record["sizes"])
    budget = times.evals_within(record["sizes"], limit)
    if budget is None:  # every call started within the limit: the same run
        record["found_in_limit"] = record["found"]
        return
    search, width = parse_search(record["search"])
    e, _ = explain_case(model, case, search, width, batch_size=BATCH, max_evals=budget)
    record["found_in_limit"] = e.found


def parse_search(name: str) -> tuple[str, int | None]:
    """``"beam(4)"`` -> ``("beam", 4)``; ``"fast"`` -> ``("fast", None)``."""
    if name.startswith("beam("):
        return "beam", int(name[5:-1])
    return name, None


def make_cases(ctx: Context, photos: Sequence[str], segmentations: Sequence[str], targets: Sequence[str],
               model: CachedModel) -> list[Case]:
    """Every (photo, segmentation, mode, target) case; ``"second"``: the photo's second class."""
    from ..imaging.samples import sample_photo
    from ..imaging.segmentation import segment

    cases = []
    for photo in photos:
        image = sample_photo(photo, ctx.input_size)
        scores = model(torch.from_numpy(image).permute(2, 0, 1)[None].to(model.device))[0]
        second = int(torch.argsort(scores, descending=True, stable=True)[1])
        for name in segmentations:
            method, params = SEGMENTATIONS[name]
            segments = np.asarray(segment(image, method, **params), dtype=np.int64)
            for mode in ctx.modes:
                for target in targets:
                    cases.append(Case(photo, name, mode, None if target == "none" else second, image, segments))
    return cases


# --------------------------------------------------------------------------------------------
# The case
# --------------------------------------------------------------------------------------------

def search_model(ctx: Context) -> Any:
    """The model to search with: ONNX Runtime on the CPU (as fast as it gets there), else torch."""
    module = ctx.models["default"].module
    if ctx.device.type != "cpu":
        return module
    from ..models.runtime import accelerate

    return accelerate(module, (3, ctx.input_size, ctx.input_size))


def case_search(ctx: Context) -> dict:
    """Every strategy on every case; the table per segmentation (printed) and the JSON section."""
    args = ctx.args
    photos = QUICK_PHOTOS if args.quick else (args.search_photos or PHOTOS)
    segmentations = ("quickshift",) if args.quick else tuple(SEGMENTATIONS)
    targets = ("none",) if args.quick else tuple(args.search_targets or TARGETS)
    model = CachedModel(search_model(ctx), ctx.device)
    cases = make_cases(ctx, photos, segmentations, targets, model)
    ctx.print(f"\nSearch strategies: {', '.join(n if w is None else f'{n}({w})' for n, w in STRATEGIES)} on "
              f"{len(cases)} cases ({len(photos)} photo(s) x {', '.join(segmentations)} x {', '.join(ctx.modes)} "
              f"x {', '.join(targets)}); batch {BATCH}, cap {args.search_max_evals} evaluations")
    records = []
    for i, case in enumerate(cases, 1):
        for search, width in STRATEGIES:
            record = run_case(model, case, search, width, BATCH, args.search_max_evals)
            records.append(record)
            ctx.print(f"  [{i}/{len(cases)}] {case.photo:<20} {case.segmentation:<10} N={record['n_segments']:<3} "
                      f"{case.mode:<5} {'SEDC-T' if case.target is not None else 'SEDC  '} {record['search']:<8} "
                      f"k={record['k']} evals={record['evaluations']} calls={record['model_calls']} "
                      f"rounds={record['rounds']}{' CAP' if record['capped'] else ''}")
    times = TimeModel.fit(model.timed)
    for case in cases:
        for record in (r for r in records if key_of(r) == case.key):
            within_limit(model, case, record, times, args.search_time_limit)
    for record in records:
        del record["sizes"]
    tables = {seg: summarize_segmentation([r for r in records if r["segmentation"] == seg])
              for seg in segmentations}
    ctx.print(format_search(tables, times, args.search_time_limit))
    return {"config": {"photos": list(photos), "segmentations": {s: SEGMENTATIONS[s] for s in segmentations},
                       "modes": ctx.modes, "targets": list(targets), "batch_size": BATCH,
                       "max_evals": args.search_max_evals, "time_limit_s": args.search_time_limit,
                       "runtime": "onnxruntime" if ctx.device.type == "cpu" else "torch"},
            "time_model": {"a_s": times.a, "b_s": times.b, "n_calls": times.n_calls,
                           "meaning": "estimated seconds of a model call of B images: a + b * B"},
            "tables": tables, "records": records,
            "ok": all(r["batch_agrees"] for r in records)}  # the answer never depends on the batch size


def key_of(record: dict) -> tuple:
    return (record["photo"], record["segmentation"], record["mode"], record["target"] is not None)


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------

def summarize_segmentation(records: list[dict]) -> dict:
    """The figures per strategy, paired with exact's run of the same case."""
    exact = {key_of(r): r for r in records if r["search"] == "exact"}
    judged = [key for key, r in exact.items() if r["found"] and r["k"] >= 2]
    sizes = sorted(r["n_segments"] for r in exact.values())
    out: dict[str, Any] = {"n_cases": len(exact), "n_judged": len(judged), "n_photos": len({k[0] for k in exact}),
                           "n_segments": [sizes[0], sizes[-1]] if sizes else None, "strategies": {}}
    for name in dict.fromkeys(r["search"] for r in records):
        runs = {key_of(r): r for r in records if r["search"] == name}
        out["strategies"][name] = strategy_figures(runs, exact, judged)
    return out


def strategy_figures(runs: dict, exact: dict, judged: list) -> dict:
    """found (all cases), then k, Δk, costs and irreducibility over the judged cases."""
    mine = [runs[key] for key in judged]
    found = [r for r in mine if r["found"]]
    deltas = [runs[key]["k"] - exact[key]["k"] for key in judged if runs[key]["found"]]
    figures = {"found": share([r["found"] for r in runs.values()]),
               "found_in_limit": share([r["found_in_limit"] for r in runs.values()]),
               "capped": sum(r["capped"] for r in runs.values()),
               "k_mean": mean([r["k"] for r in found]), "k_median": median([r["k"] for r in found]),
               "dk_median": median(deltas), "dk_le_0": share([d <= 0 for d in deltas]),
               "dk_lt_0": share([d < 0 for d in deltas]),
               "irreducible": share([r["irreducible"] for r in found])}
    for cost in ("evaluations", "model_calls", "rounds", "seconds"):
        figures[f"{cost}_median"] = median([r[cost] for r in mine])
        total = sum(exact[key][cost] for key in judged)
        figures[f"{cost}_ratio"] = sum(r[cost] for r in mine) / total if total else None
    return figures


def share(flags: list) -> float | None:
    return sum(bool(f) for f in flags) / len(flags) if flags else None


def mean(values: list) -> float | None:
    return statistics.fmean(values) if values else None


def median(values: list) -> float | None:
    return float(statistics.median(values)) if values else None


COLUMNS = ("search", "found", "found ≤ {limit:g} s (est.)", "k mean / median", "Δk median", "Δk ≤ 0",
           "Δk < 0", "evaluations median", "× exact", "model calls median", "× exact", "rounds median",
           "× exact", "time median (est.)", "× exact", "irreducible")


def format_search(tables: dict, times: TimeModel, limit: float) -> str:
    """The Markdown table per segmentation, with what each column means."""
    lines = ["", RULE, "SEARCH STRATEGIES", RULE,
             f"Time is estimated: a model call of B images costs {1000 * times.a:.1f} ms + B x "
             f"{1000 * times.b:.1f} ms (fitted to {times.n_calls} timed calls on this machine)."]
    for seg, table in tables.items():
        n = table["n_segments"]
        lines += ["", f"{seg}: {table['n_cases']} cases ({table['n_photos']} photos, N = {n[0]}..{n[1]}), "
                      f"judged (exact's k >= 2): {table['n_judged']}", ""]
        lines += [markdown_table(table, limit)]
    lines += ["", "found: over every case; the rest over the judged cases. Δk = k - k_exact per case (both "
                  "found). × exact: the strategy's total over exact's total. model calls: at batch "
                  f"{BATCH}; rounds: with every step in one batch. irreducible: no segment of the answer "
                  "can be dropped."]
    return "\n".join(lines)


def format_saved(section: dict) -> str:
    """The tables of a saved run (its JSON ``search`` section), summed up again from its records."""
    records, config, fit = section["records"], section["config"], section["time_model"]
    tables = {seg: summarize_segmentation([r for r in records if r["segmentation"] == seg])
              for seg in config["segmentations"]}
    return format_search(tables, TimeModel(fit["a_s"], fit["b_s"], fit["n_calls"]), config["time_limit_s"])


def markdown_table(table: dict, limit: float) -> str:
    """One segmentation's table (Markdown)."""
    head = [c.format(limit=limit) for c in COLUMNS]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, f in table["strategies"].items():
        capped = f" ({f['capped']} cut by the cap)" if f["capped"] else ""
        cells = [name, pct(f["found"]) + capped, pct(f["found_in_limit"]),
                 f"{num(f['k_mean'], 2)} / {num(f['k_median'], 1)}", num(f["dk_median"], 1), pct(f["dk_le_0"]),
                 pct(f["dk_lt_0"])]
        for cost, digits in (("evaluations", 0), ("model_calls", 0), ("rounds", 0), ("seconds", 1)):
            median_cell = num(f[f"{cost}_median"], digits) + (" s" if cost == "seconds" else "")
            cells += [median_cell, num(f[f"{cost}_ratio"], 2)]
        cells.append(pct(f["irreducible"]))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
