"""The ``search=`` option (exact, fast, beam) through the engine, the options and the command line.

tests/test_strategies.py checks the strategies as state machines; here they run where users meet
them: ``sedc.explain``, ``explain_many`` (shared batches), worker processes and the CLI.

- On score tables (tests/scoretable.py; hypothesis): batch sizes and ``explain_many``'s mixing
  never change an answer (nor ``n_evaluations``), each set is evaluated at most once, a limit only
  truncates, the answer is a counterfactual by the table, and ``n_model_calls`` counts the model
  batches that held the image.
- On real photos with the real model: a fresh forward pass of each answer's perturbed image
  gives its ``new_class``.
- Options and CLI: the errors, the rows' ``search`` and ``n_model_calls``, worker processes.

Hypothesis profiles: tests/conftest.py (``ci`` when ``CI`` is set: derandomized).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import scoretable as tb
from helpers.images import grid, tiny_image
from helpers.models import TinyNet
from helpers.scoretable import PAIR_VALUES, VALUES
from hypothesis import event, given, settings
from hypothesis import strategies as st

import sedc
from sedc import ExplainOptions
from sedc.cli import main

# (search, beam_width): the strategies other than exact, which tests/test_properties.py covers
SEARCHES = (("fast", None), ("beam", None), ("beam", 1), ("beam", 3))


# -- score tables ------------------------------------------------------------------------------

@st.composite
def tables(draw, n_classes=None):
    """A table over tb.WIDTH pixels: decoys (rank first, must be pruned), pair interactions
    (prefixes stop being monotone, fast may fall back), a wide margin (several segments)."""
    k = draw(st.integers(2, 4)) if n_classes is None else n_classes
    width = tb.WIDTH
    base = draw(st.lists(st.sampled_from((0.0, 0.25, 0.5, 0.75, 1.0)), min_size=k, max_size=k))
    if draw(st.booleans()):
        base[draw(st.integers(0, k - 1))] = 1.75
    weights = np.array(draw(st.lists(st.sampled_from(VALUES), min_size=width * k, max_size=width * k)),
                       np.float32).reshape(width, k)
    for p in range(width):
        if draw(st.integers(0, 3)) == 0:  # a decoy: lowers every class alike
            weights[p] = draw(st.sampled_from((-0.5, -0.25)))
    pairs = np.zeros((width, width, k), np.float32)
    if draw(st.booleans()):
        for p in range(width):
            for q in range(p + 1, width):
                if draw(st.integers(0, 3)) == 0:
                    pairs[p, q] = draw(st.lists(st.sampled_from(PAIR_VALUES), min_size=k, max_size=k))
    return tb.Table(np.array(base, np.float32), weights, pairs)


def segmentations():
    """A (1, W) label map with labels 0..8: N is 1..W, labels need not be contiguous."""
    return st.lists(st.integers(0, 8), min_size=tb.WIDTH, max_size=tb.WIDTH).map(
        lambda labels: np.array([labels], dtype=np.int64))


@st.composite
def problems(draw):
    """(table, segmentation, target): target None or a class other than the unperturbed one."""
    table, segments = draw(tables()), draw(segmentations())
    c = int(np.argmax(table.scores(frozenset())))
    target = None
    if draw(st.booleans()):
        target = (c + draw(st.integers(1, table.n_classes - 1))) % table.n_classes
    return table, segments, target


def explain(table, segments, target, **options):
    """The search alone: no checks after it (their evaluations are counted apart, see test_checks)."""
    model = tb.TableModel([table])
    e = sedc.explain(tb.image(), model, segments, mode=tb.fill, target=target, checks=(), **options)
    return e, model.seen_by(0), model


def answer(e):
    return (e.removed, e.found, e.stop_reason, e.new_class, e.new_score, e.original_class_score,
            e.n_evaluations, e.search)


def check_counterfactual(e, table, segments, target, seen):
    """The answer is a set the model saw, a counterfactual by the table, with its scores."""
    if not e.found:
        assert e.removed == [] and e.new_class == e.original_class
        return
    pixels = tb.labels_to_pixels(e.removed, segments)
    assert pixels in seen
    scores = table.scores(pixels)
    assert tb.is_counterfactual(scores, e.original_class, target)
    assert (e.new_class, e.new_score, e.original_class_score) == (
        int(np.argmax(scores)), scores[int(np.argmax(scores))], scores[e.original_class])


search_options = st.sampled_from(SEARCHES)


@settings(max_examples=60)
@given(problems(), search_options, st.booleans())
def test_each_set_once_and_the_answer_is_a_counterfactual(problem, search, prune):
    table, segments, target = problem
    name, width = search
    e, seen, model = explain(table, segments, target, search=name, beam_width=width, prune=prune,
                             batch_size=1)
    event(f"{name} {e.stop_reason}")
    assert len(seen) == len(set(seen)) == e.n_evaluations and seen[0] == frozenset()
    assert e.n_model_calls == len(model.batches) == e.n_evaluations  # batch_size=1: a call each
    assert e.search == ("fast" if name == "fast" else f"beam({width or 2})")
    check_counterfactual(e, table, segments, target, seen)
    exact, _, _ = explain(table, segments, target)
    if name == "fast":  # finds whenever exact does, and irreducibly
        assert (e.found, e.stop_reason) == (exact.found, exact.stop_reason)
        for label in e.removed if len(e.removed) > 1 else []:
            smaller = tb.labels_to_pixels(set(e.removed) - {label}, segments)
            assert not tb.is_counterfactual(table.scores(smaller), e.original_class, target)


@given(problems(), search_options, st.sampled_from([2, 3, 5, 64, "auto"]), st.booleans(),
       st.one_of(st.none(), st.integers(2, 30)))
def test_the_batch_size_never_changes_an_answer(problem, search, batch_size, prune, max_evals):
    table, segments, target = problem
    name, width = search
    options = dict(search=name, beam_width=width, prune=prune, max_evals=max_evals)
    one, one_seen, _ = explain(table, segments, target, batch_size=1, **options)
    e, seen, model = explain(table, segments, target, batch_size=batch_size, **options)
    assert seen == one_seen and answer(e) == answer(one)
    assert e.n_model_calls == len(model.batches) <= one.n_model_calls
    if isinstance(batch_size, int):
        assert max(model.batches) <= batch_size


@given(st.lists(st.tuples(tables(n_classes=3), segmentations()), min_size=2, max_size=4), search_options,
       st.sampled_from([1, 2, 3, 7, 64]), st.integers(1, 5), st.booleans(),
       st.one_of(st.none(), st.integers(2, 30)))
def test_explain_many_mixing_never_changes_an_answer(items, search, batch_size, window, prune, max_evals):
    name, width = search
    tables_ = [t for t, _ in items]
    segs = [s for _, s in items]
    model = tb.TableModel(tables_)
    images = [tb.image(i) for i in range(len(items))]
    options = dict(mode=tb.fill, search=name, beam_width=width, prune=prune, max_evals=max_evals, checks=())
    many = sedc.explain_many(images, model, segs, batch_size=batch_size, window=window, **options)
    for i, got in enumerate(many):
        alone = tb.TableModel(tables_)
        want = sedc.explain(images[i], alone, segs[i], batch_size=1, **options)
        assert model.seen_by(i) == alone.seen_by(i)
        assert answer(got) == answer(want)
        np.testing.assert_array_equal(got.mask, want.mask)
        # every model call that held one of its candidates (or its image) counts once for it
        assert got.n_model_calls == sum(i in ids for ids in model.batch_ids)


@given(problems(), search_options, st.booleans(), st.data())
def test_a_limit_only_truncates(problem, search, prune, data):
    table, segments, target = problem
    name, width = search
    full, full_seen, _ = explain(table, segments, target, search=name, beam_width=width, prune=prune)
    max_evals = data.draw(st.one_of(st.integers(max(1, full.n_evaluations - 4), full.n_evaluations + 1),
                                    st.integers(1, full.n_evaluations + 1)))
    e, seen, _ = explain(table, segments, target, search=name, beam_width=width, prune=prune,
                         max_evals=max_evals, batch_size=3)
    event(f"cut: {max_evals < full.n_evaluations}")
    assert e.n_evaluations == len(seen) == min(max_evals, full.n_evaluations)
    assert seen == full_seen[: len(seen)]
    if len(seen) == len(full_seen):
        assert answer(e)[:4] == answer(full)[:4]
    else:  # cut: the limit is the reason, or pruning was cut after a "found" search
        assert e.stop_reason == "max_evals" or (prune and full.found and e.stop_reason == "found")
    check_counterfactual(e, table, segments, target, seen)


def test_a_single_segment_is_not_searched_by_any_strategy():
    table = tb.table_from([1.0, 0.0], [[-1.0, 1.0]] * tb.WIDTH)
    for name, width in SEARCHES:
        e, seen, _ = explain(table, np.zeros((1, tb.WIDTH), np.int64), None, search=name, beam_width=width)
        assert (e.found, e.stop_reason, e.n_evaluations, e.n_model_calls) == (False, "exhausted", 1, 1)
        assert seen == [frozenset()]


# -- real photos, the real model ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name, photo", [("fast", "chelsea"), ("fast", "coffee"), ("beam", "rocket"),
                                         ("exact", "astronaut")])
def test_the_answer_is_a_counterfactual_of_the_real_model(name, photo, onnx_model, photos):
    image, segments = photos[photo]
    e = sedc.explain(image, onnx_model, segments, search=name, max_evals=200, batch_size=16)
    assert e.n_model_calls >= 1 + -(-(e.n_evaluations - 1) // 16)  # batches of at most 16
    if not e.found:
        pytest.skip(f"{name} found nothing on {photo} within 200 evaluations")
    with torch.inference_mode():
        fresh = onnx_model(e.perturbed_image)
    assert int(fresh.argmax()) == e.new_class != e.original_class
    assert float(fresh[0, e.original_class]) == pytest.approx(e.original_class_score, abs=1e-5)


# -- options and the command line ---------------------------------------------------------------

@pytest.mark.parametrize("overrides, error, match", [
    ({"search": "best"}, ValueError, "unknown search 'best'; choose one of exact, fast, beam"),
    ({"search": 2}, TypeError, "search must be one of exact, fast, beam"),
    ({"search": "beam", "beam_width": 0}, ValueError, "beam_width must be a positive integer"),
    ({"search": "beam", "beam_width": 1.5}, TypeError, "beam_width must be a positive integer"),
    ({"beam_width": 2}, ValueError, "beam_width applies to search='beam' only"),
    ({"search": "fast", "beam_width": 4}, ValueError, "beam_width applies to search='beam' only"),
])
def test_search_options_are_validated(overrides, error, match):
    with pytest.raises(error, match=match):
        ExplainOptions(**overrides)
    with pytest.raises(error, match=match):
        sedc.explain(tiny_image(0), TinyNet(), grid(), **overrides)


def test_the_default_is_exact_and_results_name_their_search():
    assert ExplainOptions().search == "exact" and ExplainOptions().beam_width is None
    image = tiny_image(0)
    default = sedc.explain(image, TinyNet(), grid(), mode="mean")
    assert default.search == "exact" and default.to_dict()["search"] == "exact"
    for options, name in (({"search": "fast"}, "fast"), ({"search": "beam"}, "beam(2)"),
                          ({"search": "beam", "beam_width": 1}, "beam(1)")):
        e = sedc.explain(image, TinyNet(), grid(), mode="mean", **options)
        assert e.search == name and e.to_dict()["search"] == name
        assert 1 <= e.to_dict()["n_model_calls"] <= e.n_evaluations


def test_worker_processes_run_the_search_they_are_given():
    images = [tiny_image(seed) for seed in range(3)]
    options = dict(mode="mean", search="beam", beam_width=1, batch_size=4)  # calls: a fixed size
    got = sedc.explain_many(images, TinyNet(), grid(), devices=["cpu", "cpu"], **options)
    for image, e in zip(images, got):
        want = sedc.explain(image, TinyNet(), grid(), **options)
        assert (e.removed, e.n_evaluations, e.search) == (want.removed, want.n_evaluations, "beam(1)")
        assert e.n_model_calls == want.n_model_calls


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for seed in range(2):
        pixels = (tiny_image(seed) * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"tiny{seed}.png")
    return folder


@pytest.fixture()
def tiny_model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    torch.jit.script(TinyNet()).save(str(path))
    return path


def cli_args(images: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["explain", str(images), "--model", str(model), "--input-size", "12", "--normalize", "none",
            "--segmentation", "grid", "--segments", "9", "--mode", "mean", "--no-figures", "--quiet",
            "--runtime", "torch", "--out", str(out), *extra]


def test_cli_rows_record_the_search_and_model_calls(images, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(cli_args(images, tiny_model_file, out, "--search", "beam", "--beam-width", "3")) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {row["search"] for row in rows} == {"beam(3)"}
    assert all(1 <= row["n_model_calls"] <= row["n_evaluations"] for row in rows)
    keys = list(rows[0])
    assert keys.index("n_evaluations") + 1 == keys.index("n_model_calls")
    assert keys.index("mode") + 1 == keys.index("search")
    # another search in the same folder is refused, as another segmentation is
    assert main(cli_args(images, tiny_model_file, out, "--search", "fast")) == 2
    err = capsys.readouterr().err
    assert "search 'beam(3)' (now 'fast')" in err and "--overwrite" in err
    assert main(cli_args(images, tiny_model_file, out, "--search", "fast", "--overwrite")) == 0
    assert {json.loads(line)["search"] for line in (out / "results.jsonl").read_text().splitlines()} == {"fast"}


def test_cli_rows_of_earlier_versions_count_as_exact(images, tiny_model_file, tmp_path):
    out = tmp_path / "out"
    assert main(cli_args(images, tiny_model_file, out)) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    old = [{k: v for k, v in json.loads(line).items() if k not in ("search", "n_model_calls")} for line in lines]
    (out / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in old))
    assert main(cli_args(images, tiny_model_file, out)) == 0  # resumes: nothing left to do
    assert main(cli_args(images, tiny_model_file, out, "--search", "beam")) == 2


@pytest.mark.parametrize("flags, message", [
    (("--search", "best"), "argument --search: unknown search 'best'; choose one of exact, fast, beam"),
    (("--beam-width", "0"), "argument --beam-width: beam_width must be a positive integer"),
    (("--beam-width", "two"), "argument --beam-width: beam_width must be an integer"),
    (("--search", "fast", "--beam-width", "2"), "--beam-width applies to --search beam only, not to --search fast"),
    (("--beam-width", "2",), "--beam-width applies to --search beam only, not to --search exact"),
])
def test_cli_search_errors_exit_2(flags, message, images, tiny_model_file, tmp_path, capsys):
    assert main(cli_args(images, tiny_model_file, tmp_path / "out", *flags)) == 2
    assert message in capsys.readouterr().err


def test_cli_help_says_when_to_use_which_search(capsys):
    assert main(["explain", "--help"]) == 0
    text = capsys.readouterr().out
    for name in ("exact", "fast", "beam"):
        assert f"\n  {name} " in text
    assert "--search exact|fast|beam" in text and "--beam-width W" in text


# -- sedc report: grouped by search when the rows differ ----------------------------------------

def report_rows(searches):
    """Rows of two images in two modes, made by ``searches`` in turn (None: no search field)."""
    out = []
    for i, (image, mode) in enumerate([("a.png", "blur"), ("b.png", "blur"), ("a.png", "mean"),
                                       ("b.png", "mean")]):
        row = {"image": image, "mode": mode, "found": True, "original_class": 1, "new_class": 2,
               "original_label": "cat", "new_label": "dog", "removed": [1] * (i + 1),
               "n_evaluations": 10 * (i + 1), "elapsed_s": 1.0, "stop_reason": "found"}
        search = searches[i % len(searches)]
        out.append(row if search is None else {**row, "search": search})
    return out


def test_report_groups_by_search_only_when_the_rows_differ():
    from sedc.report import format_markdown, summarize
    from sedc.report.html import mode_section

    plain = summarize(report_rows([None]))
    for same in (["exact"], ["beam(2)"], [None, "exact"]):
        summary = summarize(report_rows(same))
        assert "by_search" not in summary and "searches" not in summary
        assert format_markdown(summary) == format_markdown(plain)
        assert mode_section(summary) == mode_section(plain)
    mixed = summarize(report_rows([None, "fast"]))  # rows without a search are exact
    assert mixed["searches"] == ["exact", "fast"]
    assert {s: f["by_mode"]["blur"]["mean_evaluations"] for s, f in mixed["by_search"].items()} == {
        "exact": 10.0, "fast": 20.0}
    table = format_markdown(mixed).split("\n\n")[0].splitlines()
    assert table[0].startswith("| search | mode | images |")
    assert [line.split(" | ")[:2] for line in table[2:]] == [
        ["| exact", "blur"], ["| exact", "mean"], ["| exact", "all"],
        ["| fast", "blur"], ["| fast", "mean"], ["| fast", "all"]]
    html = mode_section(mixed)
    assert "Results by search and mode" in html and "<th class=\"\">Search</th>" in html
    assert html.count("<td>fast</td>") == 3 and html.count("All modes") == 2


# -- sedc benchmark --search --------------------------------------------------------------------

def test_benchmark_time_model_and_the_limit_it_implies():
    from sedc.benchmark.search import TimeModel

    times = TimeModel.fit([(1, 9.0), (1, 0.012), (4, 0.021), (16, 0.057)])  # the first call is left out
    assert times.a == pytest.approx(0.009) and times.b == pytest.approx(0.003) and times.n_calls == 3
    assert times.seconds([1, 16]) == pytest.approx(0.009 * 2 + 0.003 * 17)
    # the clock starts after the image's call (1); a call starts only while it is under the limit
    assert times.evals_within([1, 16, 16, 4], limit=0.05) == 1 + 16  # the 2nd call starts at .057 s
    assert times.evals_within([1, 16, 16, 4], limit=0.06) == 1 + 16 + 16
    assert times.evals_within([1, 16, 16, 4], limit=1.0) is None
    assert TimeModel.fit([(2, 1.0), (2, 0.2), (2, 0.4)]).b == pytest.approx(0.15)  # one size: per image


def test_benchmark_figures_pair_each_strategy_with_exact():
    from sedc.benchmark.search import markdown_table, summarize_segmentation

    def record(photo, search, k, evals, calls, **extra):
        return {"photo": photo, "segmentation": "slic100", "mode": "blur", "target": None, "search": search,
                "n_segments": 10, "found": k is not None, "k": k, "capped": False, "evaluations": evals,
                "model_calls": calls, "rounds": calls, "seconds": evals / 10, "found_in_limit": k is not None,
                "irreducible": k is not None, **extra}

    records = [record("a", "exact", 3, 100, 10), record("a", "fast", 2, 40, 20),
               record("b", "exact", 4, 200, 20), record("b", "fast", 5, 60, 30),
               record("c", "exact", 1, 11, 2), record("c", "fast", 1, 11, 2),  # k = 1: not judged
               record("d", "exact", None, 50, 5), record("d", "fast", None, 70, 9)]  # not found: not judged
    table = summarize_segmentation(records)
    assert (table["n_cases"], table["n_judged"]) == (4, 2)
    fast = table["strategies"]["fast"]
    assert fast["found"] == 0.75 and fast["k_median"] == 3.5 and fast["dk_median"] == 0.0
    assert (fast["dk_le_0"], fast["dk_lt_0"]) == (0.5, 0.5)
    assert fast["evaluations_ratio"] == pytest.approx(100 / 300) and fast["model_calls_ratio"] == pytest.approx(50 / 30)
    assert fast["evaluations_median"] == 50
    lines = markdown_table(table, 15).splitlines()
    assert lines[0].startswith("| search | found | found ≤ 15 s (est.) |") and len(lines) == 4
    assert lines[3].startswith("| fast | 75 % | 75 % | 3.50 / 3.5 | 0.0 | 50 % | 50 % | 50 | 0.33 |")


def test_benchmark_model_scores_each_image_once():
    from sedc.benchmark.search import CachedModel

    net = TinyNet()
    model = CachedModel(net, torch.device("cpu"))
    x = torch.from_numpy(np.stack([tiny_image(0), tiny_image(1)])).permute(0, 3, 1, 2).contiguous()
    first = model(x)
    model.start()
    again = model(torch.cat([x[1:], x[:1], x[1:]]))
    torch.testing.assert_close(again, first[[1, 0, 1]], rtol=0, atol=0)
    torch.testing.assert_close(first, net(x), rtol=0, atol=0)
    assert [n for n, _ in model.timed] == [2] and model.sizes == [3]


@pytest.mark.slow
def test_benchmark_search_quick_writes_its_table_and_json(tmp_path, capsys):
    from sedc.benchmark.search import format_saved
    from sedc.cli import benchmark as command

    out = tmp_path / "search.json"
    assert command.main(["--search", "--quick", "--device", "cpu", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SEARCH STRATEGIES" in text and "judged (exact's k >= 2): 1" in text
    section = json.loads(out.read_text())["search"]
    assert set(section) >= {"config", "time_model", "tables", "records"} and section["ok"]
    counts = {r["search"]: (r["k"], r["evaluations"]) for r in section["records"]}
    # rocket, quickshift, mean, plain SEDC: the counts of docs/benchmarks/search_quality.md
    assert counts == {"exact": (2, 70), "fast": (2, 37), "beam(2)": (2, 103), "beam(4)": (2, 166)}
    assert all(r["irreducible"] and r["found_in_limit"] for r in section["records"])
    table = format_saved(section)
    assert "| fast | 100 % | 100 % | 2.00 / 2.0 | 0.0 | 100 % | 0 % | 37 | 0.53 |" in table
