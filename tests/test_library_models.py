"""torchvision and timm specs: their preprocessing equals the library's own, labels, errors.

Skipped where the library cannot be imported (the main .venv: the torchvision wheel does not
import beside the CPU torch, and timm imports torchvision); ``make test-zoo`` runs them in
.venv-zoo with ``SEDC_REQUIRE_ZOO=1``, which turns that skip into a failure. No weights are
downloaded: the checks that need pretrained weights build the network with random weights (the
loaders' ``get_model`` / ``create_model`` are patched), and the missing weights tests point the
caches at an empty folder with the hub offline. Real weight loading: tests/test_zoo_pretrained.py.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch
from PIL import Image


def importable(name: str):
    """The module; a skip where it cannot be imported, a failure under SEDC_REQUIRE_ZOO=1.

    Any exception counts (a torchvision wheel built for another torch raises RuntimeError).
    """
    try:
        return importlib.import_module(name)
    except Exception as err:  # noqa: BLE001
        reason = f"{name} cannot be imported here ({type(err).__name__}: {err})"
    if os.environ.get("SEDC_REQUIRE_ZOO") == "1":
        pytest.fail(f"{reason}; SEDC_REQUIRE_ZOO=1 (make test-zoo) requires it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture()
def empty_caches(tmp_path, monkeypatch):
    """torch.hub and the Hugging Face hub pointed at an empty folder, the hub offline, for this
    test only. huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE when it is imported, so its
    constants are set too (the environment alone leaves it online); ``torch.hub.set_dir`` would
    outlive the test, so its setting is patched instead."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    try:
        from huggingface_hub import constants
    except ImportError:
        return tmp_path
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path


def probe() -> Image.Image:
    from sedc.models.preprocessing import probe_image

    return probe_image(257, 331, seed=5)


def ours(preprocessing, image) -> torch.Tensor:
    batch = torch.from_numpy(preprocessing.prepare(image)).permute(2, 0, 1)[None]
    return preprocessing.normalize(batch)[0]


TORCHVISION = ["resnet18", "efficientnet_b0", "vit_b_16", "convnext_tiny", "inception_v3"]
TIMM = ["resnet18.a1_in1k", "vit_tiny_patch16_224.augreg_in21k_ft_in1k", "convnext_tiny.fb_in1k",
        "efficientnet_b0.ra_in1k", "deit_tiny_patch16_224.fb_in1k"]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_preprocessing_equals_its_transforms(name):
    tv = importable("torchvision")
    from sedc.models.preprocessing import from_torchvision

    weights = tv.models.get_model_weights(name).DEFAULT
    transform = weights.transforms()
    image = probe()
    want = transform(image)
    got = ours(from_torchvision(transform), image)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-5


@pytest.mark.parametrize("name", TIMM)
def test_timm_preprocessing_equals_its_transform(name):
    timm = importable("timm")
    from sedc.models.preprocessing import from_timm

    net = timm.create_model(name, pretrained=False)
    config = timm.data.resolve_model_data_config(net)
    image = probe()
    want = timm.data.create_transform(**config)(image)
    got = ours(from_timm(config), image)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-5


def test_torchvision_spec_with_random_weights(monkeypatch):
    tv = importable("torchvision")
    from sedc import models

    real = tv.models.get_model
    monkeypatch.setattr(tv.models, "get_model", lambda name, weights=None: real(name, weights=None))
    loaded = models.load_user_model("torchvision:resnet18:IMAGENET1K_V1")
    assert loaded.class_names[281] == "tabby" and loaded.num_classes == 1000
    assert loaded.input_size == 224 and not loaded.module.training
    assert loaded.preprocessing.resize == 256 and loaded.preprocessing.crop == (224, 224)
    image = loaded.prepare(probe())
    assert image.shape == (224, 224, 3)


def test_torchvision_unknown_names_and_weights():
    importable("torchvision")
    from sedc import models
    from sedc.models import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="did you mean: resnet18"):
        models.load_user_model("torchvision:resnet181")
    with pytest.raises(ModelUnavailableError, match="unknown weights 'V9'.*IMAGENET1K_V1"):
        models.load_user_model("torchvision:resnet18:V9")


def test_torchvision_weights_not_cached(monkeypatch, empty_caches):
    tv = importable("torchvision")
    from sedc import models
    from sedc.models import ModelUnavailableError

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ModelUnavailableError, match=r"torchvision:resnet18: the weights .* not in the "
                                                    r"local cache .*TORCH_HOME"):
        models.load_user_model("torchvision:resnet18")
    assert tv is not None


def test_timm_spec_with_random_weights(monkeypatch):
    timm = importable("timm")
    from sedc import models

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False, **kw: real(name, pretrained=False))
    loaded = models.load_user_model("timm:vit_tiny_patch16_224.augreg_in21k_ft_in1k")
    assert loaded.preprocessing.mean == (0.5, 0.5, 0.5)  # not ImageNet's: the 3-regions-vs-1 bug
    assert loaded.class_names[281] == "tabby" and loaded.input_size == 224
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert loaded.module(x).shape == (2, 1000)


def test_timm_unknown_and_uncached(empty_caches):
    importable("timm")
    from sedc import models
    from sedc.models import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="unknown timm model"):
        models.load_user_model("timm:resnet18xyz")
    with pytest.raises(ModelUnavailableError) as caught:
        models.load_user_model("timm:resnet18.a1_in1k")
    message = str(caught.value)
    assert message.startswith("timm:resnet18.a1_in1k: its pretrained weights are not in the local "
                              f"caches ({empty_caches / 'hub'}; older timm weights: "
                              f"{empty_caches / 'checkpoints'})")
    assert "HF_HUB_OFFLINE=1" in message and "\n" not in message


def test_explain_with_a_torchvision_model_in_training_mode(monkeypatch):
    tv = importable("torchvision")
    import sedc

    net = tv.models.resnet18(weights=None)  # torchvision builds models in training mode
    state = {k: v.clone() for k, v in net.state_dict().items()}
    image = np.asarray(probe().resize((64, 64)), dtype=np.float32) / 255
    segments = np.kron(np.arange(16).reshape(4, 4), np.ones((16, 16), dtype=np.int64))
    with pytest.warns(UserWarning, match="training mode"):
        got = sedc.explain(image, net, segments, mode="mean", max_evals=40)
    want = sedc.explain(image, net.eval(), segments, mode="mean", max_evals=40)
    assert (got.removed, got.new_class) == (want.removed, want.new_class)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
