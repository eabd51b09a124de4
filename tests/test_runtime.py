"""sedc.accelerate: the ONNX Runtime classifier, its export cache, pickling and its errors.

Fast tests use small random-weight models; the slow test runs the built-in model on the four
photos against the reference with the torch model.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import sedc  # noqa: E402
from sedc.imaging.samples import DEMO_PHOTOS  # noqa: E402
from sedc.models import export, runtime  # noqa: E402

SHAPE = (3, 16, 16)


class SmallNet(nn.Module):
    """A conv net with BatchNorm and Dropout; ``out`` picks the output form."""

    def __init__(self, out: str = "tensor", classes: int = 5) -> None:
        super().__init__()
        self.out = out
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.5))
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor):
        logits = self.head(self.features(x))
        if self.out == "tuple":
            return logits, logits.sum()
        if self.out == "dict":
            return {"logits": logits, "hidden": logits * 2}
        if self.out == "object":
            return _Output(logits)
        return logits


class _Output:
    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


class Eig(nn.Module):
    """Uses an operator that has no ONNX translation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigvals(x[:, 0, :4, :4]).real


class Branchy(nn.Module):
    """Control flow on the input values: torch.export refuses it (the old tracer froze a branch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)[:, :4]
        return flat if x.mean() > 0.5 else -flat


class RowLoop(nn.Module):
    """A Python loop over the batch: exportable only with a fixed batch size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.unique(row).sum().expand(3) for row in x.flatten(1)])


@pytest.fixture
def cache(sedc_cache):
    """The test session's export cache (see conftest)."""
    return sedc_cache


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache of the test's own."""
    monkeypatch.setenv("SEDC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def model(out: str = "tensor", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = SmallNet(out)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        net.features[1].running_mean.uniform_(-0.2, 0.2)
        net.features[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def batch(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))


def test_scores_match_torch_for_any_batch_size():
    net = model()
    fast = sedc.accelerate(net, SHAPE)
    assert isinstance(fast, runtime.OnnxClassifier) and fast.runtime == "onnxruntime"
    for n in (1, 2, 7):
        x = batch(n)
        with torch.inference_mode():
            expected = net(x)
        got = fast(x)
        assert got.shape == (n, 5) and got.dtype == torch.float32
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_channels_last_and_strided_batches_are_accepted():
    net = model()
    fast = sedc.accelerate(net, SHAPE)
    x = batch(4)
    expected = fast(x)
    assert torch.equal(fast(x.contiguous(memory_format=torch.channels_last)), expected)
    assert torch.equal(fast(x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)), expected)


def test_second_call_reuses_the_cached_export(fresh_cache, monkeypatch):
    calls = []
    original = export.export_onnx
    monkeypatch.setattr(export, "export_onnx", lambda *a: calls.append(1) or original(*a))
    first = sedc.accelerate(model(), SHAPE)
    second = sedc.accelerate(model(), SHAPE)  # a new object with the same weights
    assert len(calls) == 1 and first.path == second.path
    assert [p.name for p in (fresh_cache / "onnx").iterdir()] == [first.path.split("/")[-2]]  # no temp left


def test_a_broken_cache_entry_is_exported_again(fresh_cache):
    first = sedc.accelerate(model(), SHAPE)
    with open(first.path, "wb") as file:
        file.write(b"not an onnx model")
    again = sedc.accelerate(model(), SHAPE)
    torch.testing.assert_close(again(batch(2)), model()(batch(2)).detach(), atol=1e-5, rtol=1e-5)


def test_cache_key_follows_weights_shape_and_code():
    key = export.export_key(model(), SHAPE)
    assert export.export_key(model(), SHAPE) == key
    assert export.export_key(model(seed=1), SHAPE) != key
    assert export.export_key(model(), (3, 32, 32)) != key
    assert export.export_key(Eig(), SHAPE) != export.export_key(Branchy(), SHAPE)  # no weights
    changed = model()
    changed.features[1].running_mean += 1  # a buffer, not a parameter
    assert export.export_key(changed, SHAPE) != key


def test_cache_folder_from_environment(cache, monkeypatch, tmp_path):
    assert export.cache_dir() == cache
    monkeypatch.delenv("SEDC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert export.cache_dir() == tmp_path / "xdg" / "sedc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert export.cache_dir() == tmp_path / "home" / ".cache" / "sedc"


def test_pickles_as_a_path_and_reopens_in_another_process():
    fast = sedc.accelerate(model(), SHAPE)
    x = batch(3)
    blob = pickle.dumps(fast)
    assert len(blob) < 1000 and b"onnx" in blob
    code = ("import pickle, sys, torch; clf = pickle.loads(sys.stdin.buffer.read()); "
            f"x = torch.rand((3, *{SHAPE}), generator=torch.Generator().manual_seed(1)); "
            "sys.stdout.buffer.write(pickle.dumps(clf(x).numpy()))")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    done = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True, env=env)
    assert np.array_equal(pickle.loads(done.stdout), fast(x).numpy())


def test_threads_follow_torch():
    fast = sedc.accelerate(model(), SHAPE)
    threads = torch.get_num_threads()
    assert fast.session.get_session_options().intra_op_num_threads == threads
    assert fast.session.get_session_options().inter_op_num_threads == 1
    try:
        torch.set_num_threads(1)
        assert fast.session.get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("out", ["tuple", "dict", "object"])
def test_output_rule_is_applied_before_export(out):
    net = model(out)
    fast = sedc.accelerate(net, SHAPE)
    with torch.inference_mode():
        expected = model("tensor")(batch(2))
    torch.testing.assert_close(fast(batch(2)), expected, atol=1e-5, rtol=1e-5)


def test_training_mode_model_is_exported_in_eval_mode_and_left_as_it_was():
    net = model().train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.warns(UserWarning, match=r"training mode.*\.eval\(\)"):
        fast = sedc.accelerate(net, SHAPE)
    assert all(m.training for m in net.modules())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    with torch.inference_mode():
        expected = model()(batch(2))
    torch.testing.assert_close(fast(batch(2)), expected, atol=1e-5, rtol=1e-5)


def test_unexportable_operator_is_named_with_the_fix():
    with pytest.raises(sedc.models.ExportError, match=r"aten\.linalg_eig.*runtime='torch'"):
        sedc.accelerate(Eig().eval(), SHAPE)


def test_value_dependent_control_flow_is_refused():
    with pytest.raises(sedc.models.ExportError, match=r"control flow depends on the input values.*runtime='torch'"):
        sedc.accelerate(Branchy().eval(), SHAPE)


def test_batch_size_dependent_model_is_refused():
    with pytest.raises(sedc.models.ExportError, match=r"batch size fixed at 2.*runtime='torch'"):
        sedc.accelerate(RowLoop().eval(), SHAPE)


def test_export_leaves_no_output_and_no_temp_folder(fresh_cache, capfd):
    with pytest.raises(sedc.models.ExportError):
        sedc.accelerate(Branchy().eval(), SHAPE)
    sedc.accelerate(model(), SHAPE)
    captured = capfd.readouterr()
    assert "GraphModule" not in captured.err + captured.out and "torch.export" not in captured.out
    assert len(list((fresh_cache / "onnx").iterdir())) == 1


def test_warns_when_scores_differ_from_torch(monkeypatch):
    forward = runtime.OnnxClassifier.forward
    monkeypatch.setattr(runtime.OnnxClassifier, "forward", lambda self, x: forward(self, x) + 0.01)
    with pytest.warns(RuntimeWarning, match="differ from torch's"):
        sedc.accelerate(model(), SHAPE)


def test_no_warning_when_scores_agree():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sedc.accelerate(model(), SHAPE)


def test_runtime_torch_returns_the_model_and_bad_arguments_are_refused():
    net = model()
    assert sedc.accelerate(net, SHAPE, runtime="torch") is net
    with pytest.raises(ValueError, match="runtime must be one of"):
        sedc.accelerate(net, SHAPE, runtime="tensorrt")
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\)"):
        sedc.accelerate(net, (16, 16))
    with pytest.raises(ValueError, match="runs on the CPU"):
        sedc.accelerate(net, SHAPE, device="cuda")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        sedc.accelerate(lambda x: x, SHAPE)


def test_an_onnx_file_with_a_fixed_batch_of_one_runs_row_by_row(tmp_path):
    net = model()
    path = tmp_path / "fixed.onnx"
    with export._quiet():
        torch.onnx.export(net, (batch(1),), str(path), dynamo=True, verbose=False)
    fast = runtime.OnnxClassifier(path)
    with torch.inference_mode():
        expected = net(batch(3))
    torch.testing.assert_close(fast(batch(3)), expected, atol=1e-5, rtol=1e-5)


def pixel_net() -> nn.Module:
    """A conv + BatchNorm + linear net that sees every pixel: its counterfactuals take 2 segments."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 16 * 16, 5))
    with torch.no_grad():
        net[-1].bias[1] += 0.07  # a margin for class 1: one segment is not enough
    return net.eval()


GRID = np.kron(np.arange(16).reshape(4, 4), np.ones((4, 4), dtype=np.int64))


def test_explain_with_the_accelerated_model_gives_the_torch_answer():
    net = pixel_net()
    fast = sedc.accelerate(net, SHAPE)
    image = batch(1, seed=0)[0]
    for mode in ("mean", "blur"):
        a = sedc.explain(image, net, GRID, mode=mode, max_evals=300)
        b = sedc.explain(image, fast, GRID, mode=mode, max_evals=300)
        assert a.found and len(a.removed) >= 2
        assert (a.removed, a.new_class, a.n_evaluations) == (b.removed, b.new_class, b.n_evaluations)


def test_worker_processes_reopen_the_session():
    net = pixel_net()
    fast = sedc.accelerate(net, SHAPE)
    images = [batch(1, seed=s)[0] for s in (0, 1)]
    expected = [sedc.explain(im, net, GRID, mode="mean", max_evals=100) for im in images]
    got = sedc.explain_many(images, fast, GRID, mode="mean", max_evals=100, devices="cpu,cpu")
    assert [(e.removed, e.new_class) for e in got] == [(e.removed, e.new_class) for e in expected]


def test_benchmark_rows_on_onnxruntime_give_the_originals_answers():
    from helpers.bench import tiny_context

    from sedc.benchmark import cases, measure

    ctx = tiny_context(["original", "original-onnx", "explain", "explain-onnx"])
    tiny = ctx.models["default"].module
    ctx.models["onnxruntime"] = measure.TimedModel(sedc.accelerate(tiny, (3, 24, 24)))
    section = cases.case_comparison(ctx)
    assert section["all_match"] and section["ok"]
    assert section["implementations"]["explain-onnx"]["runtime"] == "onnxruntime"
    assert section["implementations"]["original"]["runtime"] == "torch"
    assert {"original-onnx", "explain-onnx"} <= set(measure.default_implementations(torch.device("cpu")))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["blur", "mean"])
@pytest.mark.parametrize("name", DEMO_PHOTOS)
def test_accelerated_explain_returns_the_references_counterfactual(real_model, photos, oracle,
                                                                   onnx_model, name, mode):
    """The reference runs the torch model; explain runs ONNX Runtime: same answer, no more calls."""
    image, segments = photos[name]
    ref = oracle(name, mode)
    e = sedc.explain(image, onnx_model, segments, mode=mode)
    assert e.found and ref.found
    assert e.removed == sorted(ref.segments_in_explanation)
    assert (e.original_class, e.new_class) == (ref.predicted_class_index, ref.new_class)
    assert e.n_evaluations <= ref.n_evaluations
