"""Tests of ``sedc.benchmark``: statistics, mismatch reporting, the timing proxy and the CLI."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest
import torch
from helpers.bench import tiny_context
from helpers.models import stripe_model
from torch import nn

import sedc
from sedc.benchmark import Answer, RunRecord, cases, measure, report
from sedc.cli import benchmark as command


def run(impl, photo, round_, seconds, *, model_seconds=0.0, evals=10, calls=None, segments=(1, 2),
        new_class=7, mode="blur", found=True, stop_reason="found"):
    answer = Answer(found, list(segments), new_class, 3, evals, stop_reason)
    return RunRecord(mode, impl, photo, round_, seconds, model_seconds,
                     evals if calls is None else calls, evals, answer, n_segments=20)


# --------------------------------------------------------------------------------------------
# Statistics (hand-computed)
# --------------------------------------------------------------------------------------------

def test_summarize_hand_computed():
    runs = [
        # warm-up round: ignored by the statistics
        run("original", "a", -1, 100.0), run("original", "b", -1, 100.0),
        run("fast", "a", -1, 100.0), run("fast", "b", -1, 100.0),
        # original: rounds sum to 3, 6, 9 -> mean 6, sample std 3, median 6
        run("original", "a", 0, 1.0, model_seconds=0.5, evals=10),
        run("original", "b", 0, 2.0, model_seconds=1.5, evals=20),
        run("original", "a", 1, 2.0, model_seconds=1.0, evals=10),
        run("original", "b", 1, 4.0, model_seconds=3.0, evals=20),
        run("original", "a", 2, 3.0, model_seconds=1.5, evals=10),
        run("original", "b", 2, 6.0, model_seconds=4.0, evals=20),
        # fast: rounds sum to 1, 1, 4 -> mean 2, sample std sqrt(3), median 1
        run("fast", "a", 0, 0.25, model_seconds=0.25, evals=10, calls=2),
        run("fast", "b", 0, 0.75, model_seconds=0.25, evals=20, calls=3),
        run("fast", "a", 1, 0.5, model_seconds=0.25, evals=10, calls=2),
        run("fast", "b", 1, 0.5, model_seconds=0.25, evals=20, calls=3),
        run("fast", "a", 2, 2.0, model_seconds=1.0, evals=10, calls=2),
        run("fast", "b", 2, 2.0, model_seconds=1.0, evals=20, calls=3),
    ]
    summary = report.summarize(runs)
    assert list(summary) == ["blur"]
    o, f = summary["blur"]["original"], summary["blur"]["fast"]

    assert o["n"] == 3 and o["round_seconds"] == [3.0, 6.0, 9.0]
    assert o["mean"] == pytest.approx(6.0)
    assert o["std"] == pytest.approx(3.0)
    assert (o["min"], o["max"], o["median"]) == (3.0, 9.0, 6.0)
    assert o["per_explanation"] == pytest.approx(3.0)  # 6 s per round / 2 photos
    assert o["speedup"] == pytest.approx(1.0) and o["median_speedup"] == pytest.approx(1.0)
    assert o["evaluations_per_explanation"] == pytest.approx(15.0)  # 90 rows / 6 runs
    assert o["calls_per_explanation"] == pytest.approx(15.0)
    assert o["evaluations_per_second"] == pytest.approx(90 / 18)
    assert o["model_bound"] == pytest.approx(11.5 / 18)

    assert f["round_seconds"] == [1.0, 1.0, 4.0]
    assert f["mean"] == pytest.approx(2.0)
    assert f["std"] == pytest.approx(math.sqrt(3.0))
    assert (f["min"], f["max"], f["median"]) == (1.0, 4.0, 1.0)
    assert f["speedup"] == pytest.approx(3.0)          # 6 / 2
    assert f["median_speedup"] == pytest.approx(6.0)   # 6 / 1
    assert f["calls_per_explanation"] == pytest.approx(2.5)
    assert f["evaluations_per_second"] == pytest.approx(90 / 6)
    assert f["model_bound"] == pytest.approx(3.0 / 6)
    assert f["valid"] and o["valid"]
    assert f["photos"]["a"]["median_seconds"] == pytest.approx(0.5)
    assert f["photos"]["b"]["evaluations"] == pytest.approx(20)

    text = report.format_summary(summary, [])
    assert "SEDC PERFORMANCE COMPARISON SUMMARY" in text
    assert "ORIGINAL IMPLEMENTATION:" in text and "FAST IMPLEMENTATION:" in text
    assert "Mean time: 6.0000 ± 3.0000 seconds" in text
    assert "Min time:  1.0000 seconds" in text and "Max time:  4.0000 seconds" in text
    assert "Speedup:   3.00x" in text
    assert "median speedup 6.00x" in text
    assert "Model-bound fraction:   50.0%" in text
    assert "every implementation returned the same counterfactual" in text
    assert "MISMATCH" not in text


def test_single_round_has_zero_std_and_baseline_falls_back_to_first():
    runs = [run("explain", "a", 0, 2.0), run("batch", "a", 0, 4.0)]
    s = report.summarize(runs, baseline="original")["blur"]
    assert s["explain"]["std"] == 0.0
    assert s["explain"]["speedup"] == pytest.approx(1.0)
    assert s["batch"]["speedup"] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# Mismatches are reported, never hidden
# --------------------------------------------------------------------------------------------

def test_mismatch_is_reported():
    runs = [
        run("original", "cat", -1, 1.0, segments=(3, 1)),
        run("batch", "cat", -1, 1.0, segments=(1, 3)),               # same set, other order: fine
        run("original", "cat", 0, 1.0, segments=(1, 3)),
        run("batch", "cat", 0, 1.0, segments=(1, 3), new_class=9),   # other class: mismatch
        run("explain", "cat", 0, 1.0, segments=(1, 3, 4)),           # other segments: mismatch
        run("original", "dog", 0, 1.0, segments=(5,)),
        run("batch", "dog", 0, 1.0, segments=(5,)),
        run("explain", "dog", 0, 1.0, segments=(5,)),
    ]
    mismatches = report.find_mismatches(runs)
    assert {(m["implementation"], m["photo"]) for m in mismatches} == {("batch", "cat"), ("explain", "cat")}
    batch = next(m for m in mismatches if m["implementation"] == "batch")
    assert batch["expected"] == {"segments": [1, 3], "new_class": 7, "found": True}
    assert batch["got"] == {"segments": [1, 3], "new_class": 9, "found": True}
    assert batch["rounds"] == [0]

    summary = report.summarize(runs, mismatches=mismatches)["blur"]
    assert summary["original"]["valid"]
    assert not summary["batch"]["valid"] and not summary["explain"]["valid"]

    labels = [f"class{k}" for k in range(10)]
    text = report.format_summary({"blur": summary}, mismatches, labels=labels)
    assert "NOT every implementation returned the same counterfactual" in text
    assert "!!! MISMATCH [blur] batch on cat (round 0): got segments [1, 3] -> class 9 (class9); " \
           "original gave segments [1, 3] -> class 7 (class7)" in text
    assert "!!! MISMATCH [blur] explain on cat" in text
    assert text.count("NOT VALID") == 2
    # the JSON-able summary keeps the flags
    json.dumps(command._clean(summary))


def test_nondeterministic_baseline_and_capped_runs():
    runs = [
        run("original", "a", -1, 1.0, segments=(1,)),
        run("original", "a", 0, 1.0, segments=(2,)),     # the baseline disagrees with itself
        run("explain", "a", 0, 1.0, segments=(9,), found=False, stop_reason="max_evals"),  # capped: skipped
    ]
    mismatches = report.find_mismatches(runs)
    assert [(m["implementation"], m["rounds"]) for m in mismatches] == [("original", [0])]
    assert "round warm-up" not in report.format_mismatch(mismatches[0])


# --------------------------------------------------------------------------------------------
# TimedModel and a fast end-to-end run of the comparison case with a tiny model
# --------------------------------------------------------------------------------------------

def test_timed_model_is_a_transparent_module():
    inner = stripe_model()
    timed = measure.TimedModel(inner)
    assert isinstance(timed, nn.Module)
    assert [p.data_ptr() for p in timed.parameters()] == [p.data_ptr() for p in inner.parameters()]
    assert any(isinstance(m, nn.Conv2d) for m in timed.modules())
    x = torch.rand(3, 3, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(timed(x), inner(x))
        timed(x[:1])
    assert (timed.calls, timed.rows) == (2, 4) and timed.seconds > 0
    timed.reset()
    assert (timed.calls, timed.rows, timed.seconds) == (0, 0, 0.0)


def test_comparison_case_end_to_end_with_tiny_model(monkeypatch):
    def wrong(photo, mode, ctx, max_evals=None):
        ctx.models["default"](photo.tensor)
        return Answer(True, [0, 1, 2], 0, 0)

    impls = dict(measure.IMPLEMENTATIONS)
    impls["wrong"] = measure.Implementation("wrong", "deliberately wrong", wrong)
    impls["wrong-fp16"] = measure.Implementation("wrong-fp16", "inexact and wrong", wrong, exact=False)
    monkeypatch.setattr(cases, "IMPLEMENTATIONS", impls)

    ctx = tiny_context(["original", "pytorch", "batch", "explain"])
    section = cases.case_comparison(ctx)
    assert section["all_match"] and section["ok"]
    assert len(section["runs"]) == 4 * 3  # 4 implementations x (1 warm-up + 2 rounds)
    for name, s in section["summary"]["mean"].items():
        assert s["valid"] and 0.0 <= s["model_bound"] <= 1.0 and s["n"] == 2
        assert s["evaluations_per_explanation"] >= 1
        warm = [r["seconds"] for r in section["runs"] if r["implementation"] == name and r["warmup"]]
        assert s["warmup_seconds"] == pytest.approx(sum(warm)) and len(warm) == 1
    text = ctx.out.getvalue()
    assert "every implementation returned the same counterfactual" in text
    assert text.count("Warm-up round:") == 4

    ctx = tiny_context(["original", "wrong-fp16"])
    section = cases.case_comparison(ctx)
    assert not section["all_match"] and section["ok"]  # inexact: reported, does not fail
    ctx = tiny_context(["original", "explain", "wrong"])
    section = cases.case_comparison(ctx)
    assert not section["all_match"] and not section["ok"]
    assert [m["implementation"] for m in section["mismatches"]] == ["wrong"]
    assert section["mismatches"][0]["rounds"] == [-1, 0, 1]
    assert "!!! MISMATCH [mean] wrong on stripes" in ctx.out.getvalue()
    assert not section["summary"]["mean"]["wrong"]["valid"]


def test_cuda_variants_run_through_the_same_machinery_on_cpu():
    # explain-fp16 (autocast is a no-op off CUDA) and explain-cl (channels-last model copy)
    ctx = tiny_context(["original", "explain", "explain-fp16", "explain-cl"])
    inner = ctx.models["default"].module
    ctx.models["channels_last"] = measure.TimedModel(
        __import__("copy").deepcopy(inner).to(memory_format=torch.channels_last))
    section = cases.case_comparison(ctx)
    assert section["all_match"] and section["ok"]
    assert section["implementations"]["explain-fp16"]["exact"] is False
    cl = [r for r in section["runs"] if r["implementation"] == "explain-cl"]
    assert cl and all(r["model_evaluations"] > 0 for r in cl)


def test_scaling_case_and_plot_with_tiny_model(tmp_path):
    ctx = tiny_context(["original", "explain"])
    ctx.results["comparison"] = cases.case_comparison(ctx)
    ctx.results["scaling"] = section = cases.case_scaling(ctx)
    four, eight = section["points"]
    assert (four["requested"], four["n_segments"], eight["requested"], eight["n_segments"]) == (4, 4, 8, 8)
    for point in section["points"]:
        assert point["original"]["cap"] == 6 and point["explain"]["cap"] == 60
        assert point["original"]["evaluations"] <= 6
    # 4 stripes: 1 + 4 evaluations, under the cap, answers compared
    assert not four["original"]["capped"] and four["answers"] == "match"
    # 8 segments: original stops at its cap, flagged, its answer is not counted as a mismatch
    assert eight["original"]["capped"] and not eight["explain"]["capped"]
    assert not eight["answers"].startswith("MISMATCH") and eight["speedup_is_lower_bound"]
    assert section["ok"]
    assert "REACHED THE CAP" in ctx.out.getvalue()
    assert "SCALING WITH THE NUMBER OF SEGMENTS" in ctx.out.getvalue()
    throughput = ctx.results["throughput"] = cases.case_throughput(ctx)
    assert throughput["ok"] and len(throughput["images"]) == 16
    assert set(throughput["summary"]) == {"explain loop", "explain_many", "2 workers"}
    assert all(row["answers_match_loop"] for row in throughput["summary"].values())
    assert "THROUGHPUT" in ctx.out.getvalue()
    png = tmp_path / "plot.png"
    report.write_plot(png, ctx.results, "test", cases.CASES)
    assert png.stat().st_size > 1000


def test_throughput_warm_up_and_variants():
    ctx = tiny_context(["explain"])
    ctx.args.throughput_images, ctx.args.throughput_repeats = 2, 2
    ctx.args.throughput_warmup, ctx.args.throughput_variants = 1, ["loop", "many"]
    section = cases.case_throughput(ctx)
    assert section["ok"] and set(section["summary"]) == {"explain loop", "explain_many"}
    for row in section["summary"].values():
        assert len(row["seconds"]) == 2 and len(row["warmup_seconds"]) == 1
        assert row["median_seconds"] == pytest.approx(statistics.median(row["seconds"]))
    text = ctx.out.getvalue()
    assert text.count("  warm-up  ") == 2 and "1 warm-up round(s) (not for workers) + 2" in text


def test_json_is_written_after_each_case(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    seen = []

    def second(ctx):
        seen.append(json.loads(out.read_text()))  # the first case's section is already on disk
        raise KeyboardInterrupt  # as a run cut short by its time limit

    monkeypatch.setitem(cases.CASES, "second", (second, None, 0))  # the same dict as the command's
    with pytest.raises(KeyboardInterrupt):
        command.main(["--quick", "--device", "cpu", "--implementations", "original,explain",
                      "--cases", "comparison,second", "--json", str(out)])
    assert seen[0]["complete"] is False and seen[0]["comparison"]["all_match"]
    assert json.loads(out.read_text())["complete"] is False


def test_bad_options_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as err:
        command.main(["--implementations", "original,nope", "--device", "cpu"])
    assert err.value.code == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        command.main(["--device", "cpu", "--implementations", "explain-fp16"])
    with pytest.raises(SystemExit):
        command.main(["--device", "cpu", "--modes", "smudge"])
    for variants in ("many,workers", "loop,threads"):  # the loop is the baseline
        with pytest.raises(SystemExit):
            command.main(["--device", "cpu", "--throughput-variants", variants])


def test_machine_info(monkeypatch):
    # Values no real machine reports, so that each must come from where it is read.
    monkeypatch.setattr(report.os, "cpu_count", lambda: 4099)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 37)
    info = report.machine_info(torch.device("cpu"))
    assert info["cpu_count"] == 4099 and info["torch_threads"] == 37
    assert info["torch"] == torch.__version__ and info["numpy"] == np.__version__ and info["cpu_model"]
    assert info["device"] == "cpu" and info["cudnn"] is None
    text = report.format_machine(info)
    assert "4099 CPU cores (os.cpu_count), 37 torch threads" in text and info["cpu_model"] in text
    flags = info["cpu_flags"]  # None only where /proc/cpuinfo cannot be read
    assert flags is None or (set(flags) == set(report.CPU_FLAGS) and ("avx512f" in text))
    info["cpu_flags"] = {"avx2": True, "fma": True, "avx512f": False}
    assert "(avx2, fma, no avx512f)" in report.format_machine(info)


def test_overhead_case_with_tiny_model():
    from sedc.benchmark import overhead

    ctx = tiny_context(["explain"])
    ctx.models["onnxruntime"] = measure.TimedModel(sedc.accelerate(ctx.models["default"].module, (3, 24, 24)))
    section = overhead.case_overhead(ctx)
    assert section["ok"] and set(section["summary"]) == {"onnxruntime", "torch"}
    for name, s in section["summary"].items():
        assert s["ratio"] > 0 and s["alone_best"] > 0 and s["explain_per_evaluation"] > 0
        assert set(s["alone_per_image"]) == set(overhead.ALONE_BATCHES)
        assert all(size >= 1 for sizes in s["explain_batch_sizes"] for size in sizes)
        assert len(s["explain_many_batch_sizes"]) == len(ctx.photos)
        assert len(section["runs"][name]) == ctx.warmup_rounds + ctx.repeats
    assert "OVERHEAD" in ctx.out.getvalue() and "target >= 0.9 on ONNX Runtime" in ctx.out.getvalue()
    json.dumps(section, default=str)


# --------------------------------------------------------------------------------------------
# The real thing: --quick with the real model
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_quick_run_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = command.main(["--quick", "--device", "cpu", "--json", str(out), "--plot", str(tmp_path / "b.png")])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["ok"] and doc["comparison"]["all_match"] and doc["comparison"]["mismatches"] == []
    summary = doc["comparison"]["summary"]["mean"]
    expected = set(measure.default_implementations(torch.device("cpu")))  # + the ONNX rows where installed
    assert expected >= {"original", "pytorch", "batch", "explain"} and set(summary) == expected
    keys = set()
    for name, s in summary.items():
        assert s["valid"], name
        assert 0.0 <= s["model_bound"] <= 1.0
        assert s["evaluations_per_explanation"] >= 2
        for photo in s["photos"].values():
            answer = photo["answer"]
            keys.add((tuple(sorted(answer["segments"])), answer["new_class"]))
    assert len(keys) == 1
    assert doc["machine"]["cpu_count"] and doc["machine"]["torch"] == torch.__version__
    assert len(doc["comparison"]["runs"]) == len(expected)
    assert (tmp_path / "b.png").stat().st_size > 1000
    text = capsys.readouterr().out
    assert "SEDC PERFORMANCE COMPARISON SUMMARY" in text and "Speedup:" in text


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quick_run_on_cuda(tmp_path):
    out = tmp_path / "bench.json"
    assert command.main(["--quick", "--device", "cuda", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    summary = doc["comparison"]["summary"]["mean"]
    assert set(summary) == {"original", "pytorch", "batch", "explain", "explain-fp16", "explain-cl"}
    assert doc["machine"]["device_name"] == torch.cuda.get_device_name(0)
    for name, s in summary.items():
        assert 0.0 <= s["model_bound"] <= 1.0
        assert s["valid"] or not s["exact"], name  # float16 may differ; it is reported, not failed
