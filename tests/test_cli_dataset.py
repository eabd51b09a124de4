"""``sedc explain`` on labelled data sets (``--ground-truth``, ``--target true``, ``--mode a,b``)
and the ``sedc report`` wiring.

Mechanics use a tiny TorchScript model whose classes are easy to flip; the test marked ``slow``
runs the built-in EfficientNet-Lite0 on a real ImageFolder layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.cli import TINY_LABELS, rows, save_photo, sedc_cli
from helpers.models import Cells
from PIL import Image

from sedc.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")

APPLE, BANANA, CHERRY = range(3)


def cells_image(path: Path, bright: dict[int, float]) -> Path:
    """A 48x48 image of 3x3 cells; cell 4k is class k's score for ``Cells(every=4)``."""
    pixels = np.zeros((48, 48, 3), dtype=np.uint8)
    for cell, value in bright.items():
        row, col = divmod(cell, 3)
        pixels[16 * row:16 * row + 16, 16 * col:16 * col + 16] = round(255 * value)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def tiny_model(tmp_path: Path) -> list[str]:
    """The model options of a run with the 3-class cell model (apple, banana, cherry)."""
    model_file, labels_file = tmp_path / "tiny.pt", tmp_path / "labels.txt"
    torch.jit.script(Cells(every=4)).save(str(model_file))
    labels_file.write_text("\n".join(TINY_LABELS) + "\n", encoding="utf-8")
    return ["--model", str(model_file), "--class-names", str(labels_file), "--input-size", "48",
            "--segmentation", "grid", "--segments", "9", "--max-time", "30"]


@pytest.fixture()
def labelled(tmp_path: Path) -> Path:
    """An ImageFolder: banana/wrong.png is an apple to the model, banana/right.png a banana."""
    root = tmp_path / "val"
    cells_image(root / "banana" / "wrong.png", {0: 1.0, 4: 0.5})  # apple; removing cell 0 -> banana
    cells_image(root / "banana" / "right.png", {4: 1.0, 8: 0.5})
    return root


def by_image(out: Path) -> dict[str, dict]:
    return {Path(row["image"]).name: row for row in rows(out)}


# ---------------------------------------------------------------------------------------------
# Ground truth and --target true
# ---------------------------------------------------------------------------------------------

def test_folders_and_target_true(tmp_path: Path, labelled: Path, tiny_model: list[str],
                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = ["explain", str(labelled), *tiny_model, "--mode", "mean", "--ground-truth", "folders",
            "--target", "true", "--out", str(out)]
    assert main(args) == 0
    got = by_image(out)
    wrong, right = got["wrong.png"], got["right.png"]
    assert (wrong["original_label"], wrong["true_label"], wrong["correct"]) == ("apple", "banana", False)
    assert wrong["true_class"] == BANANA and wrong["target"] == BANANA and wrong["target_label"] == "banana"
    assert wrong["found"] and wrong["new_class"] == BANANA  # explained toward its label
    assert (right["original_label"], right["correct"], right["target"]) == ("banana", True, None)
    assert right["found"] and right["new_class"] != BANANA  # plain SEDC
    assert {r["target_setting"] for r in got.values()} == {"true"}
    stdout = capsys.readouterr().out
    assert "Accuracy 1/2 (50%) of the labelled images; 1 misclassified explained toward" in stdout

    assert main(args) == 0  # resume: nothing left
    assert "skipped 2 already" in capsys.readouterr().out
    assert main([*args[:-4], "--target", "banana", "--out", str(out)]) == 2  # another target setting
    assert "target 'true' (now 1)" in capsys.readouterr().err


def test_target_true_with_worker_processes_matches_one_process(tmp_path: Path, labelled: Path,
                                                              tiny_model: list[str]) -> None:
    common = ["explain", str(labelled), *tiny_model, "--mode", "mean", "--ground-truth", "folders",
              "--target", "true", "--no-figures", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "workers"), "--devices", "cpu"]) == 0
    keys = ("original_class", "true_class", "correct", "target", "found", "new_class", "removed",
            "n_evaluations", "mode")
    one, workers = by_image(tmp_path / "one"), by_image(tmp_path / "workers")
    pick = {name: [row[key] for key in keys] for name, row in one.items()}
    assert pick == {name: [row[key] for key in keys] for name, row in workers.items()}
    assert one["wrong.png"]["target"] == BANANA and one["right.png"]["target"] is None


def test_target_true_needs_ground_truth(tmp_path: Path, labelled: Path, tiny_model: list[str],
                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["explain", str(labelled), *tiny_model, "--target", "true", "--out", str(tmp_path)]) == 2
    assert "needs --ground-truth" in capsys.readouterr().err
    assert main(["explain", str(labelled), *tiny_model, "--ground-truth", "nope.csv"]) == 2
    assert "file not found: 'nope.csv'" in capsys.readouterr().err


def test_unknown_folder_exits_2_with_suggestion_before_explaining(tmp_path: Path, labelled: Path,
                                                                  tiny_model: list[str],
                                                                  capsys: pytest.CaptureFixture) -> None:
    cells_image(labelled / "banan" / "typo.png", {4: 1.0})
    cells_image(labelled / "n02123045" / "cat.png", {4: 1.0})
    out = tmp_path / "out"
    assert main(["explain", str(labelled), *tiny_model, "--ground-truth", "folders", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "folder 'banan'" in err and "did you mean: 'banana'?" in err
    assert "folder 'n02123045'" in err and "not the ImageNet-1k classes" in err
    assert not (out / "results.jsonl").exists()  # nothing was explained


def test_csv_ground_truth(tmp_path: Path, labelled: Path, tiny_model: list[str],
                          capsys: pytest.CaptureFixture) -> None:
    table = tmp_path / "labels" / "truth.csv"
    table.parent.mkdir()
    # A header; a path relative to the CSV's folder; a class id; a path as sedc records it
    # (relative to the current folder: here absolute, as the test passes absolute paths).
    table.write_text("path,label\n../val/banana/wrong.png,cherry\n"
                     f"{(labelled / 'banana' / 'right.png').as_posix()},1\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["explain", str(labelled), *tiny_model, "--ground-truth", str(table), "--out", str(out),
                 "--no-figures", "--quiet"]) == 0
    got = by_image(out)
    assert (got["wrong.png"]["true_label"], got["wrong.png"]["correct"]) == ("cherry", False)
    assert (got["right.png"]["true_label"], got["right.png"]["correct"]) == ("banana", True)
    assert all(row["target"] is None for row in got.values())  # no --target: plain SEDC

    cells_image(labelled / "extra.png", {8: 1.0})  # an image without a row: a warning, no truth
    assert main(["explain", str(labelled), *tiny_model, "--ground-truth", str(table), "--out", str(out),
                 "--no-figures", "--quiet"]) == 0
    assert "1 of 3 images have no row" in capsys.readouterr().err
    assert by_image(out)["extra.png"]["true_class"] is None

    table.write_text("path,label\nval/banana/wrong.png,bananna\n", encoding="utf-8")
    assert main(["explain", str(labelled), *tiny_model, "--ground-truth", str(table)]) == 2
    assert "line 2 (val/banana/wrong.png)" in (err := capsys.readouterr().err) and "'banana'" in err
    table.write_text("elsewhere/x.png,banana\n", encoding="utf-8")
    assert main(["explain", str(labelled), *tiny_model, "--ground-truth", str(table)]) == 2
    assert "none of the 3 images has a row" in capsys.readouterr().err
    table.write_text("a.png;banana\n", encoding="utf-8")
    assert main(["explain", str(labelled), *tiny_model, "--ground-truth", str(table)]) == 2
    assert "line 1 is not a 'path,label' row" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Several modes
# ---------------------------------------------------------------------------------------------

def test_several_modes_rows_figures_and_resume_per_mode(tmp_path: Path, labelled: Path,
                                                        tiny_model: list[str],
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    base = ["explain", str(labelled), *tiny_model, "--out", str(out)]
    assert main([*base, "--mode", "mean"]) == 0
    assert [r["mode"] for r in rows(out)] == ["mean", "mean"]
    capsys.readouterr()

    assert main([*base, "--mode", "mean,blur,mean"]) == 0  # adds blur only
    captured = capsys.readouterr().out
    assert "skipped 2 already" in captured and "explained 2 of 4 (image, mode) pairs" in captured
    assert "right.png [blur]: " in captured
    table = rows(out)
    assert sorted((Path(r["image"]).name, r["mode"]) for r in table) == [
        ("right.png", "blur"), ("right.png", "mean"), ("wrong.png", "blur"), ("wrong.png", "mean")]
    figures = [r["figure"] for r in table]
    assert len(set(figures)) == 4 and all((out / f).is_file() for f in figures)
    assert {"right_blur.png", "wrong_blur.png"} <= set(figures)

    assert main([*base, "--mode", "blur,inpaint", "--quiet"]) == 0
    assert sorted(r["mode"] for r in rows(out)) == ["blur", "blur", "inpaint", "inpaint", "mean", "mean"]


# ---------------------------------------------------------------------------------------------
# sedc report
# ---------------------------------------------------------------------------------------------

def test_report_without_results_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.jsonl in" in capsys.readouterr().err
    assert main(["report", "--help"]) == 0
    assert "summary.json" in capsys.readouterr().out
    (tmp_path / "results.jsonl").write_text('{"image": "a"}\nnot json\n{"image": "b"}\n')
    assert main(["report", str(tmp_path), "--format", "markdown"]) == 0  # the one tolerant reader
    captured = capsys.readouterr()
    assert "skipped 1 line(s) that are not result rows (line 2)" in captured.err
    assert "| None | 2 |" in captured.out  # two rows without a mode


def test_report_command_and_explain_report(tmp_path: Path, labelled: Path, tiny_model: list[str],
                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["explain", str(labelled), *tiny_model, "--mode", "mean,blur", "--ground-truth",
                 "folders", "--target", "true", "--out", str(out), "--report"]) == 0
    assert f"Report: {out / 'report.html'}" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["n_images"], summary["n_unique_images"]) == (4, 2)  # (image, mode) pairs
    assert set(summary["by_mode"]) == {"mean", "blur"} and summary["accuracy"] == 0.5
    page = (out / "report.html").read_text(encoding="utf-8")
    assert all(row["figure"] in page for row in rows(out))
    (out / "report.html").unlink()
    (out / "summary.json").unlink()

    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()
    assert main(["report", str(out), "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    assert "|" in table and "mean" in table and "blur" in table


# ---------------------------------------------------------------------------------------------
# The real model on a labelled folder
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_labelled_folder_explains_misclassification_toward_its_label(tmp_path: Path) -> None:
    """chelsea filed as tabby (n02123045; the model says Egyptian cat) is explained toward
    tabby; coffee filed as espresso (n07920052; the model agrees) gets plain SEDC."""
    root = tmp_path / "val"
    (root / "n02123045").mkdir(parents=True)
    (root / "n07920052").mkdir()
    save_photo(root / "n02123045" / "chelsea.png", "chelsea")
    save_photo(root / "n07920052" / "coffee.png", "coffee")
    out = tmp_path / "out"
    result = sedc_cli("explain", root, "--ground-truth", "folders", "--target", "true", "--mode", "mean",
                      "--max-time", "120", "--out", out)
    assert result.returncode == 0, result.stderr
    got = by_image(out)
    cat, coffee = got["chelsea.png"], got["coffee.png"]
    assert (cat["original_label"], cat["true_class"], cat["true_label"]) == ("Egyptian cat", 281, "tabby")
    assert cat["correct"] is False and cat["target"] == 281 and cat["target_label"] == "tabby"
    assert cat["found"] and cat["new_label"] == "tabby"
    assert (coffee["original_label"], coffee["true_label"], coffee["correct"]) == ("espresso", "espresso", True)
    assert coffee["target"] is None and coffee["target_setting"] == "true"
    assert "Accuracy 1/2 (50%)" in result.stdout
