"""Model specs: Hugging Face folders (offline), .pt2 / .onnx files, factories, labels and their errors.

The Hugging Face classifiers are built from tiny configs and saved with ``save_pretrained`` next
to an image processor, then loaded with ``hf:DIR`` under ``HF_HUB_OFFLINE=1``: nothing is
downloaded. torchvision and timm live in tests/test_library_models.py (skipped where they
cannot be imported).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub read it

import numpy as np
import pytest
import torch
from helpers.images import grid, tiny_image
from helpers.models import TinyNet
from PIL import Image

import sedc
from sedc import models
from sedc.cli.main import main
from sedc.models.libraries import ModelUnavailableError

transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()

SRC = Path(__file__).resolve().parents[1] / "src"
LABELS = {0: "apple", 1: "banana", 2: "cherry", 3: "date", 4: "elderberry"}


def save_vit(folder: Path, *, size=(32, 32), dropout: float = 0.0) -> Path:
    """A tiny ViT (patch 8) with its ViT image processor (exact resize, mean = std = 0.5)."""
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=list(size), patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=5, id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()}, hidden_dropout_prob=dropout)
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    processor = transformers.ViTImageProcessor(size={"height": size[0], "width": size[1]},
                                               image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.save_pretrained(folder)
    return folder


def save_convnext(folder: Path) -> Path:
    """A tiny ConvNeXT with its processor: shorter edge to 32 / 0.875, centre crop 32."""
    torch.manual_seed(1)
    config = transformers.ConvNextConfig(
        num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=32,
        num_labels=5, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    transformers.ConvNextForImageClassification(config).save_pretrained(folder)
    transformers.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875,
                                        image_mean=[0.485, 0.456, 0.406],
                                        image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {"vit": save_vit(root / "vit"), "convnext": save_convnext(root / "convnext"),
            "wide": save_vit(root / "wide", size=(32, 48))}


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A non-square photo (crop of scikit-image's chelsea), saved as PNG."""
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "cat.png"
    Image.fromarray(data.chelsea()[40:200, 60:300]).save(path)
    return path


def processor_of(folder: Path):
    major = int(transformers.__version__.split(".")[0])
    kwargs = {"backend": "pil"} if major >= 5 else {"use_fast": False}
    return transformers.AutoImageProcessor.from_pretrained(folder, **kwargs)


def cli(*args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Hugging Face
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["vit", "convnext", "wide"])
def test_hf_folder_brings_its_labels_and_preprocessing(hf_dirs, photo, name):
    folder = hf_dirs[name]
    loaded = models.load_user_model(f"hf:{folder}")
    assert loaded.class_names == list(LABELS.values()) and loaded.name == f"hf:{folder}"
    assert not loaded.module.training
    processor = processor_of(folder)
    pixels = processor(Image.open(photo), return_tensors="pt")["pixel_values"]
    image = loaded.prepare(Image.open(photo))
    assert image.shape[:2] == tuple(pixels.shape[2:])
    assert loaded.input_size == (32 if name != "wide" else (32, 48))
    net = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    batch = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = net(pixels).logits.softmax(1)
        got = loaded.module(batch)
    assert torch.allclose(got, want, atol=1e-5)


def test_hf_explain_on_the_command_line(hf_dirs, photo, tmp_path, capsys):
    folder = hf_dirs["convnext"]
    loaded = models.load_user_model(f"hf:{folder}")
    scores = loaded.module(torch.from_numpy(loaded.prepare(Image.open(photo))).permute(2, 0, 1)[None])
    target = LABELS[(int(scores.argmax()) + 1) % 5]
    out = tmp_path / "out"
    code, err = cli("explain", photo, "--model", f"hf:{folder}", "--target", target.upper(),
                    "--segmentation", "grid", "--segments", "9", "--mode", "mean", "--max-evals", "60",
                    "--quiet", "--out", out, capsys=capsys)
    assert code == 0, err
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["target_label"] == target and row["original_label"] in LABELS.values()
    figure = Image.open(out / row["figure"])
    assert figure.size[0] > 0  # the figure shows the 32x32 image the model sees


def test_hf_search_runs_on_the_image_the_model_sees(hf_dirs, photo):
    loaded = models.load_user_model(f"hf:{hf_dirs['wide']}")
    image = loaded.prepare(Image.open(photo))
    grid = np.kron(np.arange(16).reshape(4, 4), np.ones((8, 12), dtype=np.int64))
    e = sedc.explain(image, loaded.module, grid, mode="mean", max_evals=40)
    assert tuple(e.image.shape[2:]) == (32, 48) and e.mask.shape == (32, 48)


def test_hf_model_built_from_a_config_is_explained_in_eval_mode(tmp_path, photo):
    folder = save_vit(tmp_path / "dropout", dropout=0.3)
    net = transformers.AutoModelForImageClassification.from_pretrained(folder).train()
    loaded = models.load_user_model(f"hf:{folder}", softmax=False)
    image = loaded.prepare(Image.open(photo))
    grid = np.kron(np.arange(16).reshape(4, 4), np.ones((8, 8), dtype=np.int64))
    wrapped = models.Normalized(net, (0.5,) * 3, (0.5,) * 3, softmax=False)
    with pytest.warns(UserWarning, match="training mode"):
        first = sedc.explain(image, wrapped, grid, mode="mean", max_evals=40)
    with pytest.warns(UserWarning, match="training mode"):
        second = sedc.explain(image, wrapped, grid, mode="mean", max_evals=40)
    evaluated = sedc.explain(image, loaded.module, grid, mode="mean", max_evals=40)
    assert (first.removed, first.n_evaluations) == (second.removed, second.n_evaluations)
    assert (first.removed, first.new_class) == (evaluated.removed, evaluated.new_class)
    assert net.training and all(m.training for m in net.modules())


def test_hf_missing_models_are_one_line_errors(hf_dirs, photo, tmp_path, capsys):
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text("{}")
    cases = {
        "hf:google/vit-base-patch16-224": "not in the local Hugging Face cache",
        f"hf:{tmp_path / 'nowhere' / 'deeper'}": "no such folder",
        f"hf:{tmp_path / 'bare'}": "no preprocessor_config.json",
        f"hf:{photo}": "is a file",
    }
    for spec, message in cases.items():
        code, err = cli("explain", photo, "--model", spec, "--out", tmp_path / "o", capsys=capsys)
        assert code == 2, err
        assert message in err and spec.split(":", 1)[1] in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_hf_refuses_input_size_and_normalize(hf_dirs, photo, tmp_path, capsys):
    code, err = cli("explain", photo, "--model", f"hf:{hf_dirs['vit']}", "--normalize", "half",
                    "--out", tmp_path, capsys=capsys)
    assert code == 2 and "--normalize do not apply" in err
    with pytest.raises(ValueError, match="brings its own preprocessing"):
        models.load_user_model(f"hf:{hf_dirs['vit']}", input_size=64)


def test_labels_imagenet_and_files(hf_dirs, tmp_path):
    with pytest.raises(ValueError, match="ImageNet-1k labels has 1000 names but the model outputs 5"):
        models.load_user_model(f"hf:{hf_dirs['vit']}", class_names="imagenet")
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\nd\ne\n")
    assert models.load_user_model(f"hf:{hf_dirs['vit']}", class_names=names).labels == list("abcde")


def test_unknown_target_is_resolved_against_the_models_labels(hf_dirs, photo, tmp_path, capsys):
    code, err = cli("explain", photo, "--model", f"hf:{hf_dirs['vit']}", "--target", "bananna",
                    "--out", tmp_path, capsys=capsys)
    assert code == 2 and "did you mean: 'banana'" in err


# --------------------------------------------------------------------------------------------
# Output kinds
# --------------------------------------------------------------------------------------------

class Wrapped(torch.nn.Module):
    """TinyNet whose output is wrapped as ``kind``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net, self.kind = TinyNet(), kind
        self.eval()

    def forward(self, x):
        scores = self.net(x)
        if self.kind == "logits":
            return transformers.modeling_outputs.ImageClassifierOutput(logits=scores)
        kinds = {"tensor": lambda: scores, "tuple": lambda: (scores, None), "list": lambda: [scores],
                 "dict": lambda: {"logits": scores, "features": x}, "single": lambda: {"out": scores},
                 "numpy": lambda: scores.detach().numpy(), "bad": lambda: {"a": scores, "b": scores}}
        return kinds[self.kind]()


@pytest.mark.parametrize("kind", ["logits", "tuple", "list", "dict", "single", "numpy"])
def test_every_output_kind_gives_the_tensor_answer(kind):
    image = tiny_image(4)
    want = sedc.explain(image, Wrapped("tensor"), grid(), mode="mean")
    got = sedc.explain(image, Wrapped(kind), grid(), mode="mean")
    assert (got.removed, got.new_class, got.n_evaluations) == (want.removed, want.new_class,
                                                                want.n_evaluations)
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(models.Normalized(Wrapped(kind))(x), models.Normalized(Wrapped("tensor"))(x))


def test_an_output_without_scores_names_its_type_and_the_rule():
    with pytest.raises(TypeError, match=r"returned a dict with keys \['a', 'b'\]; expected a tensor"):
        sedc.explain(tiny_image(0), Wrapped("bad"), grid(), mode="mean")
    with pytest.raises(TypeError, match="returned a dict"):
        models.Normalized(Wrapped("bad"))(torch.rand(1, 3, 12, 12))


# --------------------------------------------------------------------------------------------
# Files and factories
# --------------------------------------------------------------------------------------------

def export(net: torch.nn.Module, path: Path, *, dynamic: bool = True, size=(24, 24)) -> Path:
    example = torch.rand(2, 3, *size)
    shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic else None
    torch.export.save(torch.export.export(net, (example,), dynamic_shapes=shapes), str(path))
    return path


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.f = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5))

    def forward(self, x):
        return {"logits": self.f(x)}


@pytest.mark.parametrize("dynamic", [True, False])
def test_pt2_file(tmp_path, photo, dynamic, capsys):
    path = export(Small().eval(), tmp_path / "small.pt2", dynamic=dynamic, size=(24, 32))
    loaded = models.load_user_model(path, normalize="half")
    assert loaded.input_size == (24, 32) and loaded.class_names == [str(i) for i in range(5)]
    x = torch.rand(5, 3, 24, 32)
    with torch.no_grad():
        want = Small().eval()((x - 0.5) / 0.5)["logits"].softmax(1)
    assert torch.allclose(loaded.module(x), want, atol=1e-5)
    code, err = cli("explain", photo, "--model", path, "--normalize", "half", "--segmentation", "grid",
                    "--segments", "9", "--mode", "mean", "--max-evals", "40", "--quiet", "--out",
                    tmp_path / "o", capsys=capsys)
    assert code == 0, err


def test_bad_model_files_are_one_line_errors(tmp_path, photo, capsys):
    trained = export(Small().train(), tmp_path / "trained.pt2")
    garbage = tmp_path / "garbage.pt2"
    garbage.write_bytes(b"not a model" * 10)
    state = tmp_path / "state.pt"
    torch.save(Small().state_dict(), state)
    cases = {trained: "exported in training mode", garbage: "as a torch.export program",
             state: "torch.save checkpoint", tmp_path / "missing.pt2": "model file not found"}
    for path, message in cases.items():
        code, err = cli("explain", photo, "--model", path, "--normalize", "none", "--out", tmp_path / "o",
                        capsys=capsys)
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1


def test_file_contents_win_over_their_names(tmp_path):
    scripted = tmp_path / "script.pt2"
    torch.jit.script(TinyNet()).save(str(scripted))
    assert models.load_user_model(scripted, input_size=12).num_classes == 5
    exported = export(Small().eval(), tmp_path / "exported.pt")
    assert models.load_user_model(exported).input_size == 24


def test_onnx_file(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = tmp_path / "tiny.onnx"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 5)).eval()
    try:
        torch.onnx.export(net, (torch.rand(1, 3, 12, 12),), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    except Exception as err:  # noqa: BLE001 - exporter dependencies vary
        pytest.skip(f"cannot export ONNX here: {err}")
    loaded = models.load_user_model(path, normalize="none")
    assert loaded.input_size == 12
    x = torch.rand(3, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x).softmax(1), atol=1e-5)


FACTORY = textwrap.dedent("""
    import torch

    def build():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(4, 5))
""")


def test_factory_in_the_current_folder(tmp_path, photo):
    (tmp_path / "mymodels.py").write_text(FACTORY, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(SRC), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-m", "sedc", "explain", str(photo), "--model",
                             "mymodels:build", "--input-size", "16x24", "--segmentation", "grid",
                             "--segments", "4", "--mode", "mean", "--max-evals", "20", "--quiet",
                             "--out", "out"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert any("returned a model in training mode" in line for line in lines)  # it built BatchNorm in train
    assert any("carries no preprocessing" in line for line in lines)
    row = json.loads((tmp_path / "out" / "results.jsonl").read_text())
    assert row["model"] == "mymodels:build"


def test_library_builders_are_refused_as_factories(monkeypatch):
    from sedc.models import user

    def resnet18():
        return torch.nn.Linear(2, 2)

    resnet18.__module__ = "torchvision.models.resnet"
    with pytest.raises(ValueError, match="random weights; use --model torchvision:resnet18"):
        user._refuse_library_builder("mine:resnet18", "mine", resnet18)


@pytest.mark.parametrize(("spec", "module", "extra"), [
    ("timm:resnet18", "timm", "timm"),
    ("torchvision:resnet18", "torchvision", "torchvision"),
    ("hf:google/vit-base-patch16-224", "transformers", "hf"),
])
def test_models_unavailable_without_their_library(monkeypatch, spec, module, extra):
    # The library is made unimportable whether or not it is installed here: sedc imports it
    # with importlib.import_module, which does not go through builtins.__import__ (patching
    # that one let an installed timm through on the GPU machine); a None in sys.modules makes
    # every import of the name fail with ModuleNotFoundError.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModelUnavailableError,
                       match=rf"{re.escape(spec)} needs {module}.*sedc\[{extra}\]"):
        models.load_user_model(spec)
