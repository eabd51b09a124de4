"""``sedc explain --runtime auto|torch|onnxruntime``: which runtime runs the model, and the rows say so."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.models import SeededConvNet
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from sedc.base.errors import UsageError  # noqa: E402
from sedc.cli import main  # noqa: E402
from sedc.cli.runtime import resolve_runtime  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")

FACTORIES = '''
import torch
from torch import nn


class Cells5(nn.Module):
    def forward(self, x):
        cells = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 3).flatten(1)
        return 20 * cells[:, 0::2]


class Eig(nn.Module):
    def forward(self, x):
        return torch.linalg.eigvals(x[:, 0, :5, :5]).real


def build():
    return Cells5()


def build_eig():
    return Eig()
'''


def namespace(**options) -> argparse.Namespace:
    return argparse.Namespace(**{"runtime": "auto", "ray": None, "devices": None, **options})


@pytest.fixture()
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rtnets.py").write_text(FACTORIES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    return path


def explain(image: Path, out: Path, *extra: str) -> list[dict]:
    code = main(["explain", str(image), "--model", "rtnets:build", "--input-size", "24",
                 "--segmentation", "grid", "--segments", "9", "--mode", "mean", "--no-figures",
                 "--quiet", "--out", str(out), *extra])
    assert code == 0
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_auto_means_onnxruntime_on_the_cpu_and_torch_elsewhere():
    cpu = SeededConvNet()
    assert resolve_runtime(namespace(), cpu) == "onnxruntime"
    assert resolve_runtime(namespace(runtime="torch"), cpu) == "torch"
    assert resolve_runtime(namespace(devices="cpu,cpu"), cpu) == "onnxruntime"
    assert resolve_runtime(namespace(devices="cuda:0,cuda:1"), cpu) == "torch"
    assert resolve_runtime(namespace(ray="local"), cpu) == "torch"
    assert resolve_runtime(namespace(), torch.jit.script(SeededConvNet())) == "torch"  # TorchScript: no export


def test_onnxruntime_where_it_cannot_run_is_a_usage_error():
    with pytest.raises(UsageError, match="CPU"):
        resolve_runtime(namespace(runtime="onnxruntime", ray="local"), SeededConvNet())


def test_rows_record_the_runtime_and_both_runtimes_agree(factories: Path, image: Path, tmp_path: Path):
    fast = explain(image, tmp_path / "ort", "--runtime", "onnxruntime")
    slow = explain(image, tmp_path / "torch", "--runtime", "torch")
    auto = explain(image, tmp_path / "auto")
    assert [r["runtime"] for r in fast + slow + auto] == ["onnxruntime", "torch", "onnxruntime"]
    key = ("removed", "new_class", "n_evaluations", "found")
    assert [r[k] for r in fast for k in key] == [r[k] for r in slow for k in key]


def test_unexportable_model_falls_back_to_torch_under_auto_only(factories: Path, image: Path,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture):
    common = ["explain", str(image), "--model", "rtnets:build_eig", "--input-size", "24",
              "--segmentation", "grid", "--segments", "4", "--mode", "mean", "--max-evals", "5",
              "--no-figures", "--quiet"]
    assert main([*common, "--runtime", "onnxruntime", "--out", str(tmp_path / "a")]) == 2
    assert "aten.linalg_eig" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "b")]) == 0
    assert "running the model on torch" in capsys.readouterr().err
    row = json.loads((tmp_path / "b" / "results.jsonl").read_text(encoding="utf-8"))
    assert row["runtime"] == "torch"
