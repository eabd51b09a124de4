"""Tests for sedc.models: the built-in EfficientNet-Lite0, user models and class lookup."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from helpers.models import SeededConvNet
from skimage import data, transform
from torch import nn

from sedc import models
from sedc.models import LoadedModel, ModelFileNotFoundError, Normalized, resolve_class

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")

CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


@pytest.fixture(scope="module")
def lite0() -> LoadedModel:
    return models.load()


def _batch(size: int = 32) -> torch.Tensor:
    image = transform.resize(data.astronaut(), (size, size), anti_aliasing=True)
    return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]


# ---------------------------------------------------------------------------------------------
# Built-in model
# ---------------------------------------------------------------------------------------------

def test_available_and_describe() -> None:
    assert models.available()[0] == models.DEFAULT_MODEL == "efficientnet-lite0"
    described = models.describe()
    assert list(described) == models.available()
    assert "ImageNet" in described["efficientnet-lite0"]


@pytest.mark.slow
def test_default_model_recognises_chelsea(lite0: LoadedModel) -> None:
    assert lite0.name == "efficientnet-lite0" and lite0.input_size == 224
    assert not lite0.module.training
    image = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        probs = lite0.module(batch)
    assert probs.shape == (1, 1000)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1), atol=1e-4)
    top = int(probs[0].argmax())
    assert top in CATS, lite0.class_names[top]
    assert lite0.class_names[top] in {"Egyptian cat", "tabby", "tiger cat"}
    assert float(probs[0, top]) > 0.5


def test_load_accepts_devices_and_rejects_unknown_names() -> None:
    assert models.load(device="cpu").class_names[285] == "Egyptian cat"
    loaded = models.load("EfficientNet-Lite0", device=torch.device("cpu"))
    assert next(loaded.module.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="unknown model 'resnet'.*efficientnet-lite0"):
        models.load("resnet")
    with pytest.raises(TypeError, match="model name must be a string"):
        models.load(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device"):
        models.load(device="tpu")


def test_imagenet_labels_and_synonyms() -> None:
    labels = models.imagenet_labels()
    synonyms = models.imagenet_synonyms()
    assert len(labels) == len(synonyms) == 1000
    assert labels[0] == "tench" and labels[281] == "tabby" and labels[285] == "Egyptian cat"
    assert synonyms[281] == ("tabby", "tabby cat")
    assert all(names[0] == label for names, label in zip(synonyms, labels))
    labels[0] = "changed"  # callers get copies
    assert models.imagenet_labels()[0] == "tench"


# ---------------------------------------------------------------------------------------------
# Normalized wrapper
# ---------------------------------------------------------------------------------------------

def test_normalized_normalises_and_softmaxes() -> None:
    net = SeededConvNet(classes=4).eval()
    x = _batch()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    wrapped = Normalized(net, mean, std).eval()
    expected = net((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    with torch.no_grad():
        assert torch.allclose(wrapped(x), expected.softmax(1), atol=1e-6)
        assert torch.allclose(Normalized(net, softmax=False)(x), net(x))
    assert "mean" in dict(wrapped.named_buffers())


def test_normalized_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="together"):
        Normalized(SeededConvNet(classes=4), mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="same length"):
        Normalized(SeededConvNet(classes=4), (0.5, 0.5, 0.5), (0.5, 0.5))
    with pytest.raises(ValueError, match="positive"):
        Normalized(SeededConvNet(classes=4), (0.5, 0.5, 0.5), (0.5, 0.0, 0.5))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        Normalized(lambda x: x)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# User models
# ---------------------------------------------------------------------------------------------

@pytest.fixture()
def scripted(tmp_path) -> tuple:
    net = SeededConvNet(classes=4).eval()
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    return net, path


def test_torchscript_with_labels_file(tmp_path, scripted) -> None:
    net, path = scripted
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n  bird  \nfish\n\n", encoding="utf-8")
    loaded = models.load_user_model(str(path), input_size=32, normalize="none", labels=labels)
    assert loaded.class_names == ["cat", "dog", "bird", "fish"]
    assert loaded.input_size == 32 and loaded.name == str(path) and loaded.num_classes == 4
    x = _batch()
    with torch.no_grad():
        probs = loaded.module(x)
        assert torch.allclose(probs, net(x).softmax(1), atol=1e-5)
    assert torch.allclose(probs.sum(1), torch.ones(1))


def test_torchscript_traced_with_logits_and_imagenet_normalisation(tmp_path) -> None:
    net = SeededConvNet(classes=3).eval()
    path = tmp_path / "traced.pt"
    torch.jit.trace(net, _batch()).save(str(path))
    loaded = models.load_user_model(path, input_size=32, softmax=False)
    assert loaded.class_names == ["0", "1", "2"]
    x = _batch()
    mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net((x - mean) / std), atol=1e-5)


def test_labels_file_errors(tmp_path, scripted) -> None:
    _, path = scripted
    wrong_count = tmp_path / "three.txt"
    wrong_count.write_text("a\nb\nc\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has 3 names but the model outputs 4 classes"):
        models.load_user_model(str(path), input_size=32, labels=wrong_count)
    blank = tmp_path / "blank.txt"
    blank.write_text("a\n\nb\nc\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"blank line\(s\) at \[2\]"):
        models.load_user_model(str(path), input_size=32, labels=blank)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        models.read_labels(empty)
    with pytest.raises(ValueError, match="labels file not found"):
        models.load_user_model(str(path), input_size=32, labels=tmp_path / "nope.txt")


def test_module_factory(tmp_path, monkeypatch) -> None:
    (tmp_path / "mymod.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def make():
            torch.manual_seed(1)
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, 5))

        def not_a_model():
            return "model"

        NOT_CALLABLE = 3
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = models.load_user_model("mymod:make", input_size=24, normalize="half")
    assert loaded.class_names == ["0", "1", "2", "3", "4"] and loaded.name == "mymod:make"
    assert not loaded.module.training
    inner = loaded.module.model
    x = _batch(24)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), inner((x - 0.5) / 0.5).softmax(1), atol=1e-6)
    with pytest.raises(TypeError, match="returned a str; it must return a torch.nn.Module"):
        models.load_user_model("mymod:not_a_model")
    with pytest.raises(TypeError, match="not a callable factory"):
        models.load_user_model("mymod:NOT_CALLABLE")
    with pytest.raises(ValueError, match="module 'mymod' has no attribute 'missing'"):
        models.load_user_model("mymod:missing")


def test_bad_specs(tmp_path) -> None:
    missing = tmp_path / "missing.pt"
    with pytest.raises(ModelFileNotFoundError, match="model file not found") as info:
        models.load_user_model(str(missing))
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    assert str(missing) in str(info.value)
    with pytest.raises(ValueError,
                       match=r"cannot import module 'no_such_module_xyz'.*package\.module:factory"):
        models.load_user_model("no_such_module_xyz:make")
    with pytest.raises(ValueError, match="is not a model file, 'package.module:factory', torchvision:NAME"):
        models.load_user_model("just-a-word")
    with pytest.raises(ValueError, match="is a folder"):
        models.load_user_model(str(tmp_path))
    with pytest.raises(TypeError, match="model spec must be"):
        models.load_user_model(42)  # type: ignore[arg-type]


def test_state_dict_file_is_not_torchscript(tmp_path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(SeededConvNet(classes=4).state_dict(), path)
    with pytest.raises(ValueError, match="torch.save checkpoint.*package.module:factory"):
        models.load_user_model(str(path))


def test_bad_options_and_incompatible_models(tmp_path, scripted) -> None:
    _, path = scripted
    with pytest.raises(ValueError, match=r"normalize must be one of \['imagenet', 'half', 'none'\]"):
        models.load_user_model(str(path), normalize="zscore")
    with pytest.raises(TypeError, match="input_size"):
        models.load_user_model(str(path), input_size=2.5)  # type: ignore[arg-type]
    flat = tmp_path / "flat.pt"
    torch.jit.script(nn.Identity()).save(str(flat))
    with pytest.raises(ValueError, match=r"returned \(1, 3, 8, 8\).*\(B, K\)"):
        models.load_user_model(str(flat), input_size=8)
    gray = tmp_path / "gray.pt"
    torch.jit.script(nn.Conv2d(1, 2, 3)).save(str(gray))
    with pytest.raises(ValueError, match="failed on a zeros batch of shape"):
        models.load_user_model(str(gray), input_size=8, normalize="none")


# ---------------------------------------------------------------------------------------------
# resolve_class
# ---------------------------------------------------------------------------------------------

def test_resolve_class_ids_and_names() -> None:
    labels = models.imagenet_labels()
    assert resolve_class(285, labels) == 285
    assert resolve_class(np.int64(7), labels) == 7
    assert resolve_class(" 281 ", labels) == 281
    assert resolve_class("Egyptian Cat", labels) == 285
    assert resolve_class("egyptian_cat", labels) == 285
    assert resolve_class("tabby cat", labels) == 281  # a synonym
    assert resolve_class("shades", labels) == 837
    assert resolve_class("b", ["a", "B", "c"]) == 1


def test_resolve_class_errors() -> None:
    labels = models.imagenet_labels()
    with pytest.raises(ValueError, match=r"class id 1000 is out of range; allowed ids are 0\.\.999"):
        resolve_class(1000, labels)
    with pytest.raises(ValueError, match=r"allowed ids are 0\.\.999"):
        resolve_class(-1, labels)
    with pytest.raises(ValueError, match=r"unknown class 'tabbby'; did you mean: 'tabby'"):
        resolve_class("tabbby", labels)
    with pytest.raises(ValueError, match="ambiguous.*134.*517"):
        resolve_class("crane", labels)
    with pytest.raises(ValueError, match=r"unknown class 'zzz'; give a class id 0\.\.2"):
        resolve_class("zzz", ["cat", "dog", "bird"])
    with pytest.raises(ValueError, match="'catt'.*did you mean: 'cat'"):
        resolve_class("catt", ["cat", "dog", "bird"])
    with pytest.raises(TypeError, match="int id or a str"):
        resolve_class(True, labels)
    with pytest.raises(TypeError, match="int id or a str"):
        resolve_class(2.0, labels)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels is empty"):
        resolve_class("cat", [])


def test_model_spec_is_one_picklable_loader_and_factory():
    import pickle
    import warnings

    from sedc.models import ModelSpec

    assert ModelSpec().is_builtin and ModelSpec().name == models.DEFAULT_MODEL
    assert ModelSpec(" EfficientNet-Lite0 ").is_builtin
    assert not ModelSpec("helpers.models:train_mode_net").is_builtin
    spec = ModelSpec("helpers.models:train_mode_net", input_size=12, normalize="none")
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.warns(UserWarning, match="returned a model in training mode"):
        loaded = spec.load("cpu")  # the process that loads it hears about it
    assert loaded.input_size == 12 and loaded.class_names == [str(k) for k in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the copies built by workers stay quiet
        module = spec()
    assert isinstance(module, torch.nn.Module) and not module.training
    assert all(t.device.type == "cpu" for t in module.parameters())


def test_model_spec_refuses_user_model_options_for_a_builtin():
    from sedc.models import ModelSpec

    with pytest.raises(ValueError, match="input_size, class_names only apply to your own models"):
        ModelSpec(None, input_size=300, class_names="imagenet").load()

