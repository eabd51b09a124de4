"""Tests for the ``sedc`` command line (``sedc.cli``, ``python -m sedc``).

End-to-end runs go through ``python -m sedc`` in a subprocess; the cheaper checks (help, usage
errors, resume) call :func:`sedc.cli.main` in-process. Mechanics use tiny random-weight models;
only the tests marked ``slow`` run the real EfficientNet-Lite0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from helpers.cli import SRC, TINY_LABELS, cli_env, rows, save_photo, sedc_cli
from helpers.models import Cells

import sedc
from sedc import __version__
from sedc.cli import main, read_rows
from sedc.imaging.io import load_image
from sedc.imaging.segmentation import segment

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")

CATS = {"Egyptian cat", "tabby", "tiger cat"}

FACTORY_MODULE = """
import torch
from torch import nn


class Cells5(nn.Module):
    def forward(self, x):
        cells = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 3).flatten(1)
        return 20 * cells[:, 0::2]


def build():
    return Cells5()
"""


@pytest.fixture()
def small_images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    save_photo(folder / "coffee.png", "coffee", 48)
    save_photo(folder / "sub" / "rocket.jpg", "rocket", 40)
    return folder


@pytest.fixture()
def scripted(tmp_path: Path) -> tuple[Path, Path]:
    model_file, labels_file = tmp_path / "tiny.pt", tmp_path / "labels.txt"
    torch.jit.script(Cells(every=4)).save(str(model_file))  # 3 classes: cells 0, 4 and 8 of a 3 x 3 grid
    labels_file.write_text("\n".join(TINY_LABELS) + "\n", encoding="utf-8")
    return model_file, labels_file


# ---------------------------------------------------------------------------------------------
# Help, version, models, benchmark
# ---------------------------------------------------------------------------------------------

def test_version_via_python_m() -> None:
    result = sedc_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sedc {__version__}"


def test_subprocesses_run_the_code_under_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Even with another sedc on the caller's PYTHONPATH, as a stale checkout or install could be.
    decoy = tmp_path / "decoy" / "sedc"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy sedc ran')\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(decoy.parent))
    env = cli_env(tmp_path)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SRC), str(tmp_path), str(decoy.parent)]  # kept, last
    result = subprocess.run([sys.executable, "-c", "import sedc; print(sedc.__file__)"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == SRC / "sedc" / "__init__.py"


@pytest.mark.parametrize("command", [[], ["explain"], ["demo"], ["models"]])
def test_help_exits_0_with_an_example(command: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example" in out and "sedc " in out
    if command == ["explain"]:
        for topic in ("modes", "--target", "results.jsonl", "resum", "only load models you trust"):
            assert topic in out


def test_models_lists_the_builtin(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet-lite0 (default)" in out and "ImageNet" in out


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 2
    assert main(["explain", "x.png", "--mode", "nope"]) == 2
    assert main(["explain", "x.png", "--batch-size", "0"]) == 2
    assert main(["explain", "x.png", "--mode", "mean,nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown mode 'nope'" in err and "positive integer" in err


def test_benchmark_help_is_its_own(capsys: pytest.CaptureFixture) -> None:
    assert main(["benchmark", "--help"]) == 0
    assert "usage: sedc benchmark" in capsys.readouterr().out


def test_benchmark_passes_arguments_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("sedc.cli.benchmark")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "sedc.cli.benchmark", fake)
    assert main(["benchmark", "--images", "a b", "-n", "2", "--help"]) == 3
    assert seen == [["--images", "a b", "-n", "2", "--help"]]


# ---------------------------------------------------------------------------------------------
# Usage errors (exit 2, nothing written)
# ---------------------------------------------------------------------------------------------

def test_usage_errors_exit_2(tmp_path: Path, small_images: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    image = small_images / "coffee.png"
    (tmp_path / "empty").mkdir()
    cases = {
        ("--device", "tpu9"): "device 'tpu9' is not valid",
        ("--segments", "9"): "--segments applies to",
        ("--segmentation", "felzenszwalb", "--segments", "9"): "--segments applies to",
        ("--class-names", "labels.txt"): "only apply to your own models",
        ("--model", str(tmp_path / "missing.pt")): "model file not found",
        ("--model", "no-such-model"): "built-in models: efficientnet-lite0",
        ("--model", "no_such_module_xyz:build"): "cannot import module",
    }
    for options, message in cases.items():
        assert main(["explain", str(image), "--out", str(out), *options]) == 2, options
        assert message in capsys.readouterr().err, options
    assert main(["explain", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "nope.png"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_target_typo_suggests_names(tmp_path: Path, small_images: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = main(["explain", str(small_images), "--target", "tabbby", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean" in err and "'tabby'" in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# User models, resume, overwrite
# ---------------------------------------------------------------------------------------------

def test_torchscript_model_then_resume_and_overwrite(tmp_path: Path, small_images: Path,
                                                      scripted: tuple[Path, Path],
                                                      capsys: pytest.CaptureFixture) -> None:
    model_file, labels_file = scripted
    out = tmp_path / "out"
    args = ["explain", small_images, "--model", model_file, "--class-names", labels_file,
            "--input-size", "32", "--segmentation", "grid", "--segments", "9", "--mode", "mean",
            "--max-time", "20", "--out", out]
    result = sedc_cli(*args)
    assert result.returncode == 0, result.stderr
    first = rows(out)
    assert [r["image"] for r in first] == [(small_images / "coffee.png").as_posix(),
                                           (small_images / "sub" / "rocket.jpg").as_posix()]
    for row in first:
        assert row["original_label"] in TINY_LABELS and row["new_label"] in TINY_LABELS
        assert row["n_segments_total"] == 9 and row["segmentation"] == "grid(n_segments=9)"
        assert row["model"] == str(model_file) and row["mode"] == "mean"
        assert row["figure"] and (out / row["figure"]).is_file()
        assert row["target"] is None and row["target_label"] is None
    assert {r["figure"] for r in first} == {"coffee.png", "rocket.png"}
    assert "Done: explained 2 of 2 images" in result.stdout
    assert any(r["found"] for r in first)
    assert "coffee.png: " in result.stdout and " -> " in result.stdout and " evals, " in result.stdout

    args = [str(a) for a in args]
    assert main(args) == 0  # resume: nothing left to do
    assert "skipped 2 already in results.jsonl" in capsys.readouterr().out
    assert rows(out) == first

    with open(out / "results.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"image": "cut sho')  # a write interrupted by a crash
    assert main([*args, "--segments", "4"]) == 2  # other settings: refuse to mix them
    assert "--overwrite" in capsys.readouterr().err

    assert main([*args, "--overwrite", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert [r["image"] for r in rows(out)] == [r["image"] for r in first]


def test_resume_retries_failures_and_repairs_partial_line(tmp_path: Path, small_images: Path,
                                                          scripted: tuple[Path, Path],
                                                          capsys: pytest.CaptureFixture) -> None:
    model_file, _ = scripted
    bad = small_images / "broken.png"
    bad.write_bytes(b"this is not a png")
    out = tmp_path / "out"
    args = ["explain", str(small_images), "--model", str(model_file), "--input-size", "32",
            "--segmentation", "grid", "--segments", "4", "--max-evals", "20", "--no-figures",
            "--out", str(out)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert f"error: {bad.as_posix()}: " in captured.err
    assert [r["image"] for r in rows(out)] == [(small_images / "coffee.png").as_posix(),
                                               (small_images / "sub" / "rocket.jpg").as_posix()]
    assert all(r["figure"] is None for r in rows(out))
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["image"] for e in errors] == [bad.as_posix()]

    with open(out / "results.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"image": "x", "fou')
    save_photo(bad, "astronaut", 36)  # fixed: the re-run explains it and skips the others
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "incomplete last line" in captured.err and "skipped 2" in captured.out
    assert [r["image"] for r in rows(out)][-1] == bad.as_posix()
    assert len(rows(out)) == 3 and not (out / "errors.jsonl").exists()


def test_resume_refuses_other_segmentation_or_target(tmp_path: Path, small_images: Path,
                                                     scripted: tuple[Path, Path],
                                                     capsys: pytest.CaptureFixture) -> None:
    model_file, labels_file = scripted
    out = tmp_path / "out"
    args = ["explain", str(small_images), "--model", str(model_file), "--class-names", str(labels_file),
            "--input-size", "32", "--segmentation", "grid", "--segments", "9", "--mode", "mean",
            "--max-evals", "20", "--no-figures", "--quiet", "--out", str(out)]
    assert main(args) == 0
    first = rows(out)
    assert len(first) == 2
    changes = {  # the setting that differs, and its new value, are named
        ("--segments", "4"): ("segmentation", "grid(n_segments=4)"),
        ("--segmentation", "slic"): ("segmentation", "slic"),
        ("--target", "banana"): ("target", "1"),
    }
    for change, (key, value) in changes.items():
        assert main([*args, *change]) == 2, change
        err = capsys.readouterr().err
        assert key in err and value in err and "--overwrite" in err, (change, err)
    assert main(args) == 0  # the same settings resume (nothing left to do)
    assert rows(out) == first


def test_read_rows_keeps_a_complete_unterminated_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"image": "a"}\nnot json\n{"image": "b"}', encoding="utf-8")
    assert [r["image"] for r in read_rows(path)] == ["a", "b"]
    assert path.read_text(encoding="utf-8").endswith('{"image": "b"}\n')


def test_module_factory_model_with_target(tmp_path: Path, small_images: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "tinynets.py").write_text(FACTORY_MODULE, encoding="utf-8")
    image = small_images / "coffee.png"
    namespace: dict = {}
    exec(FACTORY_MODULE, namespace)
    array = load_image(image, 24)
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None]
    model = namespace["build"]()
    predicted = int(model((pixels - 0.5) / 0.5).argmax())
    # The answer in this process, for the first target that can be reached: the command must
    # reach it too, with the same segments.
    cells = segment(array, "grid", n_segments=9)
    answers = {t: sedc.explain(array, lambda x: model((x - 0.5) / 0.5), cells, mode="mean", target=t)
               for t in range(5) if t != predicted}
    target = next(t for t, e in answers.items() if e.found)
    expected = answers[target]
    env = cli_env(package)
    out = tmp_path / "out"
    result = sedc_cli("explain", image, "--model", "tinynets:build", "--normalize", "half",
                      "--input-size", "24", "--segmentation", "grid", "--segments", "9",
                      "--mode", "mean", "--target", str(target), "--quiet", "--out", out, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    (row,) = rows(out)
    assert row["model"] == "tinynets:build" and row["segmentation"] == "grid(n_segments=9)"
    assert row["preprocessing"] == "resize to 24x24 (bicubic), mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5)"
    assert row["target"] == target and row["target_label"] == str(target)
    assert row["original_class"] == predicted and row["original_label"] == str(predicted)
    assert row["found"] is True and row["new_class"] == target and row["stop_reason"] == "found"
    assert row["removed"] == expected.removed and row["n_evaluations"] == expected.n_evaluations
    assert (out / row["figure"]).is_file()


# ---------------------------------------------------------------------------------------------
# The real model
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_explain_real_photo_with_a_corrupt_file(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    save_photo(folder / "chelsea.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    out = tmp_path / "out"
    result = sedc_cli("explain", folder, "--mode", "mean", "--max-time", "60", "--out", out)
    assert result.returncode == 1, result.stderr
    assert "corrupt.jpg" in result.stderr and "error:" in result.stderr
    (row,) = rows(out)
    assert row["image"] == (folder / "chelsea.png").as_posix()
    assert row["original_label"] in CATS
    assert row["model"] == "efficientnet-lite0" and row["segmentation"] == "quickshift"
    assert row["found"] == (row["new_label"] != row["original_label"])  # may time out on busy CPUs
    assert row["stop_reason"] in ("found", "max_time")
    assert row["figure"] == "chelsea.png" and (out / "chelsea.png").is_file()
    assert "1 failed" in result.stdout and row["original_label"] in result.stdout


@pytest.mark.slow
def test_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = sedc_cli("demo", "--mode", "mean", "--max-time", "5", "--out", out)
    assert result.returncode == 0, result.stderr
    names = {"chelsea", "coffee", "rocket", "astronaut"}
    assert {Path(r["image"]).stem for r in rows(out)} == names
    assert {p.stem for p in out.glob("*.png")} == names
    assert {p.stem for p in (out / "inputs").glob("*.png")} == names
    assert "Demo figures" in result.stdout


SLOW_FACTORY_MODULE = FACTORY_MODULE + """

import time


class SlowCells5(Cells5):
    def forward(self, x):
        time.sleep(0.05)
        return super().forward(x)


def build_slow():
    return SlowCells5()
"""


def test_devices_give_the_same_results_as_one_process(tmp_path: Path, small_images: Path,
                                                      scripted: tuple[Path, Path]) -> None:
    model_file, labels_file = scripted
    common = ["explain", small_images, "--model", model_file, "--class-names", labels_file, "--input-size", "32",
              "--segmentation", "grid", "--segments", "9", "--mode", "mean", "--no-figures", "--quiet"]
    single = sedc_cli(*common, "--out", tmp_path / "one")
    multi = sedc_cli(*common, "--devices", "cpu,cpu", "--out", tmp_path / "two")
    assert single.returncode == 0 and multi.returncode == 0, multi.stderr

    def by_image(folder: Path) -> dict:
        return {r["image"]: (r["removed"], r["new_class"], r["n_evaluations"]) for r in rows(folder)}

    assert by_image(tmp_path / "one") == by_image(tmp_path / "two") and len(by_image(tmp_path / "two")) == 2


def test_ctrl_c_leaves_valid_results_that_a_rerun_resumes(tmp_path: Path) -> None:
    import signal
    import time

    (tmp_path / "slowmod.py").write_text(SLOW_FACTORY_MODULE, encoding="utf-8")
    folder = tmp_path / "images"
    folder.mkdir()
    for k, name in enumerate(["coffee", "rocket", "astronaut", "chelsea"] * 2):
        save_photo(folder / f"{k}_{name}.png", name, 32)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "sedc", "explain", str(folder), "--model", "slowmod:build_slow",
            "--input-size", "32", "--segmentation", "grid", "--segments", "9", "--mode", "mean",
            "--no-figures", "--runtime", "torch", "--out", str(out)]  # torch keeps the sleep in forward
    env = cli_env(tmp_path)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        results = out / "results.jsonl"
        if results.exists() and results.read_text(encoding="utf-8").count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done = rows(out)  # every line is complete JSON
    assert proc.returncode == 130 and "resume" in err and 1 <= len(done) < 8
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"skipped {len(done)} already in results.jsonl" in again.stdout
    final = rows(out)
    assert len(final) == 8 and len({r["image"] for r in final}) == 8 and final[: len(done)] == done


def test_ray_runs_through_scale_iter_explain_and_a_lost_cluster_is_exit_2(
        tmp_path: Path, small_images: Path, scripted: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    import sedc.cli.ray_session as ray_session
    import sedc.scale
    from sedc.base.errors import RayClusterError
    from sedc.models import ModelSpec

    calls = []

    def iter_explain(tasks, classifier, **kwargs):  # the one many-image entry point, --ray or not
        calls.append((classifier, kwargs))
        raise RayClusterError("no Ray actor could start in 300 s: the images not yet done are left")
        yield

    monkeypatch.setattr(ray_session, "_import_ray", lambda: types.SimpleNamespace(shutdown=lambda: None))
    monkeypatch.setattr(ray_session, "join", lambda ray, address, timeout: None)  # a joined cluster
    monkeypatch.setattr(sedc.scale, "iter_explain", iter_explain)
    model_file, labels_file = scripted
    code = main(["explain", str(small_images), "--model", str(model_file), "--class-names", str(labels_file),
                 "--input-size", "32", "--segmentation", "grid", "--segments", "9", "--mode", "mean",
                 "--runtime", "torch", "--no-figures", "--quiet", "--out", str(tmp_path / "out"),
                 "--ray", "auto"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]  # no image marked failed either
    assert code == 2 and errors == ["sedc explain: error: no Ray actor could start in 300 s: the images "
                                    "not yet done are left"]
    (classifier, kwargs), = calls
    assert classifier == ModelSpec(str(model_file), 32, None, str(labels_file))  # each actor builds it
    assert kwargs["ray_address"] == "auto" and kwargs["devices"] is None and kwargs["on_error"] == "return"
    assert kwargs["on_event"].__self__.log == tmp_path / "out" / "ray.log"  # the session hears of deaths
