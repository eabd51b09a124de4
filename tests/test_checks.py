"""The checks after the search (sedc.core.checks): verify, fills, minimal, second models, area.

Each check's finding is compared with a hand computation: score tables (tests/scoretable.py)
and RegionModel (tests/helpers/models.py) give exact scores; real photos go through the reference oracle's fills
(``sedc.reference.fill_image``), one forward pass each. With checks off, the search is today's.
"""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import scoretable as tb
from helpers.images import grid, grid_segments, tiny_image, zeros_fill
from helpers.models import RegionModel, TinyNet
from hypothesis import given, settings
from hypothesis import strategies as st

import sedc
from sedc import reference
from sedc.base.errors import InputError, InputTypeError
from sedc.base.options import CHECK_FILLS, parse_checks
from sedc.core.result import CheckResults
from sedc.display.figure import summary as caption
from sedc.report import format_markdown, summarize, write_report

TESTS = str(Path(__file__).resolve().parent)
ALL = ("verify", "fills", "minimal")


def comparable(e: sedc.Explanation) -> tuple:
    """What the search decided: must not depend on the checks."""
    return (e.removed, e.found, e.new_class, e.new_score, e.original_class_score, e.n_evaluations,
            e.stop_reason, e.target)


# ---------------------------------------------------------------- spelling

def test_checks_are_spelled_as_a_tuple_of_names_kept_in_order():
    assert sedc.ExplainOptions().checks == ("verify",)
    assert sedc.ExplainOptions(checks=["minimal", "verify", "minimal"]).checks == ("verify", "minimal")
    assert sedc.ExplainOptions(checks="fills").checks == ("fills",)
    assert sedc.ExplainOptions(checks=None).checks == sedc.ExplainOptions(checks=()).checks == ()
    with pytest.raises(InputError, match="verify, fills, minimal"):
        sedc.ExplainOptions(checks=("verify", "fils"))
    with pytest.raises(InputError, match="check_models="):
        sedc.ExplainOptions(checks=("model:resnet50",))
    with pytest.raises(InputTypeError):
        sedc.ExplainOptions(checks=3)
    net = TinyNet()
    assert sedc.ExplainOptions(check_models=net).check_models == (net,)
    with pytest.raises(InputTypeError, match="check_models"):
        sedc.ExplainOptions(check_models=[net, 3])


def test_the_command_line_spelling():
    assert parse_checks("none") == parse_checks(" ") == ()
    assert parse_checks("minimal, fills,model:torchvision:resnet50") == (
        "fills", "minimal", "model:torchvision:resnet50")
    for bad in ("fils", "model:", "verify,model: "):
        with pytest.raises(InputError):
            parse_checks(bad)
    from sedc.cli import main

    assert main(["explain", "x.png", "--check", "fils"]) == 2


# ---------------------------------------------------------------- the search is unchanged

@st.composite
def table_problems(draw):
    """A score table over 6 pixels (segments: the pixels, or pairs of them), SEDC or SEDC-T."""
    k = draw(st.integers(2, 3))
    values = (-0.5, -0.25, -0.125, 0.0, 0.125, 0.25, 0.5)
    base = [1.0, 0.5, 0.25][:k]
    weights = np.array(draw(st.lists(st.sampled_from(values), min_size=tb.WIDTH * k,
                                     max_size=tb.WIDTH * k)), np.float32).reshape(tb.WIDTH, k)
    pairs = {(p, q): draw(st.lists(st.sampled_from(values), min_size=k, max_size=k))
             for p, q in draw(st.lists(st.sampled_from(list(combinations(range(tb.WIDTH), 2))),
                                       max_size=4, unique=True))}
    segments = draw(st.sampled_from([np.arange(tb.WIDTH)[None], np.repeat(np.arange(3), 2)[None]]))
    target = draw(st.sampled_from([None, 1]))  # class 0 is the unperturbed image's
    return tb.table_from(base, weights, pairs), segments, target


def explain_table(table, segments, target, **options):
    model = tb.TableModel([table])
    return sedc.explain(tb.image(), model, segments, mode=tb.fill, target=target, batch_size=3,
                        **options), model


@settings(deadline=None, max_examples=60)
@given(table_problems(), st.booleans())
def test_checks_leave_the_search_alone_and_minimal_equals_brute_force(problem, prune):
    table, segments, target = problem
    off, off_model = explain_table(table, segments, target, checks=(), prune=prune)
    default, _ = explain_table(table, segments, target, prune=prune)
    on, on_model = explain_table(table, segments, target, checks=("verify", "minimal"), prune=prune)
    assert comparable(off) == comparable(default) == comparable(on)
    assert off.n_check_evaluations == 0 and off.checks == CheckResults()
    assert len(off_model.seen_by(0)) == off.n_evaluations     # checks off: the model saw the search only
    if not off.found:
        assert on.n_check_evaluations == default.n_check_evaluations == 0 and on.checks.verified is None
        return
    assert default.n_check_evaluations == 1 and default.checks.verified is True
    assert on_model.batches[len(off_model.batches)] == 1                  # verify: a batch of one
    c = off.original_class
    drops = [label for label in off.removed if table_drop_is_counterfactual(
        table, segments, off.removed, label, c, off.target)]
    assert on.checks.droppable == drops and on.checks.irreducible == (not drops)
    assert 1 <= on.n_check_evaluations <= 1 + len(off.removed)
    if prune:
        assert on.checks.irreducible and on.n_check_evaluations == 1     # by construction: free


def table_drop_is_counterfactual(table, segments, removed, label, original, target) -> bool:
    kept = [x for x in removed if x != label]
    if not kept:
        return False
    scores = table.scores(tb.labels_to_pixels(kept, segments))
    return tb.is_counterfactual(scores, original, target)


# ---------------------------------------------------------------- minimal by hand

def prune_example():
    """test_search's pruning example: the search answers [1..5]; only {4, 5} is needed."""
    seg = grid_segments(3, 3)
    weights = np.zeros((9, 2), np.float32)
    weights[[1, 2, 3], 0], weights[[4, 5], 0] = -0.1, -0.05
    pairs = np.zeros((9, 9, 2), np.float32)
    pairs[4, 5, 1] = 0.95
    return seg, lambda: RegionModel(seg, weights, np.array([1.0, 0.0], np.float32), pairs)


def test_minimal_names_the_regions_that_can_be_dropped():
    seg, model = prune_example()
    ones = torch.ones(1, 1, 12, 12)
    e = sedc.explain(ones, model(), seg, mode=zeros_fill, checks=("minimal",))
    assert e.removed == [1, 2, 3, 4, 5] and not e.checks.irreducible
    assert e.checks.droppable == [1, 2, 3]
    # {1,2,3,5} and {1,2,3,4} were evaluated by the search (not counterfactuals): 3 evaluations
    assert e.n_check_evaluations == 3
    pruned = sedc.explain(ones, model(), seg, mode=zeros_fill, checks=("minimal",), prune=True)
    assert pruned.removed == [4, 5] and pruned.checks.irreducible and pruned.n_check_evaluations == 0
    # pruning cut short by the evaluation limit: not irreducible by construction, so evaluated
    search_cost = sedc.explain(ones, model(), seg, mode=zeros_fill, checks=()).n_evaluations
    cut = sedc.explain(ones, model(), seg, mode=zeros_fill, checks=("minimal",), prune=True,
                       max_evals=search_cost + 3)
    assert len(cut.removed) == 4 and cut.checks.droppable == [x for x in cut.removed if x not in (4, 5)]
    assert cut.n_check_evaluations == 4


# ---------------------------------------------------------------- fills: a blur artifact

class MidTones(torch.nn.Module):
    """Class 1 grows with the share of mid-grey pixels (0.25 < x < 0.75); class 0 is fixed.

    A black image with a black-and-white checkerboard in one cell has no mid-grey pixel: blurring
    the checkerboard makes mid-grey (class 1), replacing it by the image's mean (1/8) does not.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = ((x > 0.25) & (x < 0.75)).float().mean(dim=(1, 2, 3))
        return torch.stack([torch.full_like(mid, 0.5), 5 * mid], dim=1)


def checkerboard() -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((32, 32, 3), np.float32)
    image[:16, :16] = (np.indices((16, 16)).sum(axis=0) % 2)[:, :, None]
    return image, np.kron(np.arange(4).reshape(2, 2), np.ones((16, 16), np.int64))


def test_a_counterfactual_that_holds_only_under_blur_is_reported_as_not_holding_under_mean():
    image, seg = checkerboard()
    e = sedc.explain(image, MidTones(), seg, mode="blur", checks=("fills",))
    assert e.removed == [0] and e.new_class == 1
    fills = e.checks.fill_outcomes
    assert list(fills) == [f for f in CHECK_FILLS if f != "blur"] and e.n_check_evaluations == 3
    assert fills["mean"] == {"holds": False, "new_class": 0} and not e.checks.holds_under_every_fill
    for name, outcome in fills.items():  # by hand: the reference's fill, one forward pass
        assert outcome["new_class"] == hand_class(MidTones(), image, seg, e.removed, name)
    assert e.checks.summary() == "holds under random; not under mean, harmonic"
    assert caption(e).endswith("; holds under random; not under mean, harmonic")
    assert e.to_dict()["holds_under_every_fill"] is False


def hand_class(model, image, seg, removed, fill_mode, seed=0) -> int:
    """The class ``model`` gives ``image`` with ``removed`` replaced by the reference's fill."""
    fill = reference.fill_image(image, seg, fill_mode, seed)
    mask = np.isin(seg, removed)[:, :, None]
    perturbed = np.where(mask, fill, image).astype(np.float32)
    with torch.inference_mode():
        scores = model(torch.from_numpy(perturbed.transpose(2, 0, 1).copy())[None])
    return int(sedc.models.to_scores(scores).argmax())


# ---------------------------------------------------------------- second models

class Blind(torch.nn.Module):
    """Ignores the image: always class 2 of 5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.eye(5)[2].expand(x.shape[0], 5)


def test_a_second_model_that_ignores_the_image_does_not_transfer():
    image = tiny_image(0)
    e = sedc.explain(image, TinyNet(), grid(), mode="mean", check_models=[Blind(), TinyNet()])
    assert e.found and e.checks.model_outcomes == [
        {"model": "Blind", "original_class": 2, "new_class": 2, "transfers": False},
        {"model": "TinyNet", "original_class": e.original_class, "new_class": e.new_class, "transfers": True}]
    assert e.checks.transfers is False and e.n_check_evaluations == 1 + 2 * 2
    targeted = sedc.explain(image, TinyNet(), grid(), mode="mean", target=e.new_class, check_models=[TinyNet()])
    assert targeted.checks.transfers is (targeted.new_class == e.new_class) is True


def test_a_model_spec_gets_its_own_input_size():
    from sedc.models import ModelSpec

    spec = ModelSpec("helpers.models:TinyNet", input_size=24, normalize="none")
    image = tiny_image(1)
    with pytest.warns(UserWarning, match="training mode"):
        e = sedc.explain(image, TinyNet(), grid(), mode="mean", checks=(), check_models=[spec])
    loaded = spec.load()
    (outcome,) = e.checks.model_outcomes
    for which, picture in (("original_class", e.image), ("new_class", e.perturbed_image)):
        prepared = loaded.prepare(picture[0])           # 12x12 -> the spec's 24x24
        assert prepared.shape == (24, 24, 3)
        with torch.inference_mode():
            scores = loaded.module(torch.from_numpy(prepared.transpose(2, 0, 1).copy())[None])
        assert outcome[which] == int(scores.argmax())
    assert outcome["model"] == "helpers.models:TinyNet"


# ---------------------------------------------------------------- verify

class BatchBiased(torch.nn.Module):
    """Scores that depend on the batch: in batches of more than one image, removing regions
    raises class 1 (a stand-in for a kernel or float16 effect); alone, class 0 always wins."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        removed = 1 - x.mean(dim=(1, 2, 3))
        return torch.stack([torch.ones_like(removed), 2 * removed * (x.shape[0] > 1)], dim=1)


def test_an_answer_found_inside_a_batch_that_does_not_hold_alone_is_not_verified():
    seg = grid_segments(2, 2)
    e = sedc.explain(torch.ones(1, 1, 8, 8), BatchBiased(), seg, mode=zeros_fill, batch_size=4)
    assert e.found and e.new_class == 1
    assert e.checks.verified is False and (e.checks.verified_class, e.checks.verified_score) == (0, 1.0)
    row = e.to_dict()
    assert row["verified"] is False and row["verified_class"] == 0
    from sedc.cli.rows import checks_line, unverified_warning

    full = {**row, "image": "x.png", "new_label": "one"}
    assert "did not verify" in unverified_warning(full, ["zero", "one"]) and "zero 1.00" in \
        unverified_warning(full, ["zero", "one"])
    assert checks_line([full]) == "Checks: 0 of 1 verified (1 not: see the warnings)."
    summary = summarize([full])
    assert summary["n_unverified"] == 1 and summary["verified_rate"] == 0.0
    assert "did not verify" in format_markdown(summary)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_verify_holds_on_the_demo_photos(real_model, onnx_model, photos, runtime):
    """Every demo photo on ONNX Runtime; torch (slower per image at larger batches on some CPUs)
    on the cheapest one, where the search and the check still batch differently."""
    from sedc.imaging.samples import DEMO_PHOTOS

    model = onnx_model if runtime == "onnxruntime" else real_model.module
    for name in DEMO_PHOTOS if runtime == "onnxruntime" else ["astronaut"]:
        photo, segmentation = photos[name]
        e = sedc.explain(photo, model, segmentation, mode="mean", max_evals=250)
        assert e.found, name
        assert e.checks.verified and e.checks.verified_class == e.new_class, name
        assert e.n_check_evaluations == 1
        assert abs(e.checks.verified_score - e.new_score) < 1e-4, name


# ---------------------------------------------------------------- a real photo, by hand

@pytest.mark.slow
def test_fills_and_minimal_on_a_real_photo_agree_with_a_hand_computation(onnx_model):
    from sedc.imaging.samples import sample_photo
    from sedc.imaging.segmentation import segment

    photo = sample_photo("coffee")
    seg = segment(photo, "quickshift")
    e = sedc.explain(photo, onnx_model, seg, mode="mean", checks=ALL, max_evals=200)
    assert e.found and len(e.removed) >= 2
    c = e.original_class
    for name, outcome in e.checks.fill_outcomes.items():
        assert outcome["new_class"] == hand_class(onnx_model, photo, seg, e.removed, name), name
        assert outcome["holds"] == (outcome["new_class"] != c)
    drops = [x for x in e.removed
             if hand_class(onnx_model, photo, seg, [y for y in e.removed if y != x], "mean") != c]
    assert e.checks.droppable == drops and e.checks.irreducible == (not drops)
    assert e.n_check_evaluations <= 1 + 3 + len(e.removed)
    assert e.area == pytest.approx(np.isin(seg, e.removed).mean())


# ---------------------------------------------------------------- every driver, the same checks

BACKEND_OPTIONS = dict(mode="mean", checks=ALL, check_models=[TinyNet(seed=2)])


def checked(e: sedc.Explanation) -> tuple:
    return (*comparable(e), e.checks, e.n_check_evaluations, e.area)


@pytest.fixture(scope="module")
def alone():
    images = [tiny_image(seed) for seed in range(4)]
    return images, [checked(sedc.explain(image, TinyNet(), grid(), **BACKEND_OPTIONS)) for image in images]


def test_explain_many_and_worker_processes_give_the_checks_of_explain(alone):
    images, want = alone
    assert [checked(e) for e in sedc.explain_many(images, TinyNet(), grid(), window=3,
                                                  **BACKEND_OPTIONS)] == want
    assert [checked(e) for e in sedc.explain_many(images, TinyNet(), grid(), devices="cpu,cpu",
                                                  **BACKEND_OPTIONS)] == want


try:
    import ray
except ImportError:
    ray = None


@pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'sedc[ray]')")
def test_ray_gives_the_checks_of_explain(alone):
    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process")
    images, want = alone
    path = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    try:
        from sedc.scale.ray import iter_explain_ray

        results = dict(iter_explain_ray(images, TinyNet(), grid(), chunk_size=2, **BACKEND_OPTIONS))
    finally:
        ray.shutdown()
    assert [checked(results[i]) for i in range(len(images))] == want


# ---------------------------------------------------------------- the report

def report_row(image, mode, found=True, **checks):
    return {"image": image, "found": found, "original_class": 1, "original_label": "cat",
            "original_score": 0.8, "new_class": 2 if found else 1, "new_label": "dog" if found else "cat",
            "new_score": 0.5, "removed": [1, 2] if found else [], "n_segments_total": 30,
            "n_evaluations": 40, "elapsed_s": 1.0, "mode": mode, "stop_reason": "found" if found else
            "exhausted", "target": None, "figure": None, **checks}


CHECKED_ROWS = [
    report_row("a.png", "blur", area=0.1, verified=True, holds_under_every_fill=False, irreducible=True,
               transfers=True, fills={"mean": {"holds": False, "new_class": 1}}),
    report_row("b.png", "blur", area=0.3, verified=False, holds_under_every_fill=True, irreducible=False,
               transfers=True, fills={"mean": {"holds": True, "new_class": 2}}),
    report_row("c.png", "blur", found=False, area=0.0),
    report_row("a.png", "mean", area=0.2, verified=True, transfers=False),
]


def test_summary_and_markdown_of_the_checks_by_hand():
    summary = summarize(CHECKED_ROWS)
    assert (summary["verified_rate"], summary["n_verified_checked"], summary["n_unverified"]) == (2 / 3, 3, 1)
    assert summary["holds_under_every_fill_rate"] == 0.5 and summary["irreducible_rate"] == 0.5
    assert summary["transfers_rate"] == 2 / 3 and summary["n_fragile"] == 2
    assert summary["mean_area"] == pytest.approx(0.2)          # found rows only
    assert summary["by_mode"]["mean"]["holds_under_every_fill_rate"] is None   # not run: no 0 %
    table = format_markdown(summary).splitlines()
    assert table[0].endswith("| verified | holds under every fill | irreducible | transfers | mean area |")
    assert table[2].startswith("| blur |") and table[2].endswith("| 50.0 % | 50.0 % | 50.0 % | 100.0 % | 20.0 % |")
    assert table[3].endswith("| 100.0 % | - | - | 0.0 % | 20.0 % |")
    # results without any check: today's table
    plain = [{k: v for k, v in row.items() if k in report_row("x", "m")} for row in CHECKED_ROWS]
    assert "verified" not in format_markdown(summarize(plain)).splitlines()[0]
    only_verify = [{**row, "verified": True} for row in plain]
    assert format_markdown(summarize(only_verify)).splitlines()[0].endswith("| mean time (s) | verified |")


def test_the_report_shows_the_checks_and_filters_fragile_answers(tmp_path, browser):
    page_file = write_report(tmp_path, CHECKED_ROWS)
    tab = browser.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda err: problems.append(str(err)))
    tab.goto(page_file.as_uri())
    tab.wait_for_load_state("load")
    heads = tab.eval_on_selector_all("#modes th", "ths => ths.map(t => t.textContent)")
    assert heads[-5:] == ["Verified alone", "Holds under every fill", "Irreducible", "Transfers", "Mean area"]

    def shown():
        return tab.eval_on_selector_all("#gallery .card", "cards => cards.map(c => +c.dataset.i)")

    assert shown() == [0, 1, 2, 3]
    tab.click("#status-filter button[data-value=fragile]")
    assert shown() == [0, 3]
    assert tab.get_attribute("#gallery .card .pill.limit", "title") == "not under mean"
    tab.click("#status-filter button[data-value=unverified]")
    assert shown() == [1]
    tab.close()
    assert problems == []


# ---------------------------------------------------------------- the command line

CLI_MODELS = '''
import torch
from torch import nn


class Cells(nn.Module):
    """Class k is the brightness of grid cell 2k (of 3 x 3)."""

    def forward(self, x):
        cells = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 3).flatten(1)
        return 20 * cells[:, 0::2]


class Shifted(Cells):
    def forward(self, x):
        return super().forward(x.flip(3))


class Biased(nn.Module):
    """Class 1 in any batch of more than one image, class 0 alone."""

    def forward(self, x):
        ones = torch.ones(x.shape[0])
        return torch.stack([ones, 2 * ones * (x.shape[0] > 1)], dim=1)


def cells():
    return Cells().eval()


def shifted():
    return Shifted().eval()


def biased():
    return Biased().eval()
'''


@pytest.fixture()
def cli_run(tmp_path, monkeypatch):
    """``sedc explain`` in this process on two small photos with the models above."""
    from PIL import Image

    from sedc.cli import main
    from sedc.imaging.samples import sample_photo

    (tmp_path / "checkmodels.py").write_text(CLI_MODELS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    images = tmp_path / "images"
    images.mkdir()
    for name in ("coffee", "rocket"):
        pixels = (sample_photo(name, 32) * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{name}.png")

    def run(model, *args):
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
        code = main(["explain", str(images), "--model", f"checkmodels:{model}", "--input-size", "32",
                     "--normalize", "none", "--runtime", "torch", "--segmentation", "grid", "--segments", "9",
                     "--out", str(out), *args])
        return code, sedc.cli.read_rows(out / "results.jsonl"), out

    return run


def test_the_command_line_runs_and_reports_the_checks(cli_run, capsys):
    code, rows, out = cli_run("cells", "--mode", "mean", "--check", "fills,minimal,model:checkmodels:shifted",
                              "--report", "--no-figures")
    assert code == 0 and len(rows) == 2
    printed = capsys.readouterr().out
    for row in (r for r in rows if r["found"]):
        assert row["verified"] is None and set(row["fills"]) == {"blur", "random", "harmonic"}
        assert row["irreducible"] is not None and row["check_models"][0]["model"] == "checkmodels:shifted"
        assert row["n_check_evaluations"] <= 3 + len(row["removed"]) + 2
        assert row["area"] > 0
    assert "Checks: " in printed and ("holds under" in printed or "not under" in printed)
    assert "transfer" in printed
    assert "Holds under every fill" in (out / "report.html").read_text()
    code, rows, _ = cli_run("cells", "--mode", "mean", "--check", "none", "--no-figures")
    assert code == 0 and all(r["verified"] is None and r["n_check_evaluations"] == 0 for r in rows)


def test_the_command_line_names_an_unverified_answer(cli_run, capsys):
    code, rows, _ = cli_run("biased", "--mode", "mean", "--batch-size", "4", "--no-figures")
    assert code == 0 and all(r["found"] and r["verified"] is False for r in rows)
    captured = capsys.readouterr()
    assert captured.err.count("did not verify") == 2
    assert "Checks: 0 of 2 verified (2 not: see the warnings)." in captured.out
