"""Real torchvision and timm architectures (random weights): training mode, the output rule and
``sedc.accelerate`` (a real ONNX export, run on ONNX Runtime).

Three architectures as their libraries build them, in training mode: torchvision's ResNet-18
(BatchNorm: batch statistics and running buffers in training mode), timm's ViT-Tiny and
ConvNeXt-Atto (dropout and stochastic depth switched on, so training mode is random). Images
are 64x64 (ResNet and ConvNeXt take any size; the ViT is built for 64x64) with 16 grid regions,
and every search is bounded by ``max_evals`` to keep the run short.

Random weights alone make a useless test: such a network's class hardly depends on its input
(removing any of the 16 regions, or all of them, never changed it), so every search would stop
at ``max_evals`` with nothing found, whatever the runtime computed. :func:`calibrate` sets the
head's bias so that the answer lies two levels deep: the scores are centred on the image's
variants, and the image's class gets just enough margin that no single region flips it (some
pairs do). The searches then find a two-region counterfactual in 32 evaluations.

Skipped where torchvision or timm cannot be imported (the main ``.venv``); ``make test-zoo`` sets
``SEDC_REQUIRE_ZOO=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import copy
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.zoo import require
from torch import nn

import sedc
from sedc.base.outputs import TRAINING_MODE_WARNING
from sedc.models import OnnxClassifier

SIZE = 64
SHAPE = (3, SIZE, SIZE)
MAX_EVALS = 60
ARCHITECTURES = ["torchvision:resnet18", "timm:vit_tiny_patch16_224", "timm:convnext_atto"]


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's cat at 64x64 and a 4x4 grid of regions."""
    from skimage import data, transform

    image = transform.resize(data.chelsea(), (SIZE, SIZE), anti_aliasing=True)
    image = np.clip(image, 0, 1).astype(np.float32)
    return image, sedc.segment(image, "grid", n_segments=16)


def build(name: str, scene: tuple[np.ndarray, np.ndarray]) -> nn.Module:
    """``name``'s network with seeded random weights, calibrated on ``scene``, in training mode
    as the library builds it."""
    library, _, arch = name.partition(":")
    tv = require("torchvision")  # timm imports it too
    torch.manual_seed(0)
    if library == "torchvision":
        net = tv.models.get_model(arch, weights=None)
    else:
        timm = require("timm")
        size = {"img_size": SIZE} if arch.startswith("vit") else {}
        net = timm.create_model(arch, pretrained=False, drop_rate=0.2, drop_path_rate=0.2, **size)
    calibrate(net.eval(), *scene)
    return net.train()


def removed(image: np.ndarray, segments: np.ndarray, regions: list[np.ndarray]) -> torch.Tensor:
    """The image with each set of ``regions`` filled with its mean colour (mode "mean"): (N, 3, H, W)."""
    x = torch.from_numpy(image).permute(2, 0, 1)
    fill = x.mean(dim=(1, 2), keepdim=True)
    return torch.stack([torch.where(torch.from_numpy(np.isin(segments, r))[None], fill, x)
                        for r in regions])


@torch.no_grad()
def calibrate(net: nn.Module, image: np.ndarray, segments: np.ndarray) -> None:
    """Set the head's bias so that, in mode "mean", no single region changes the image's class.

    First the scores are centred on 32 variants of the image (random regions removed), so that
    they depend on the image and not on the head's random bias; then the image's class is raised
    just above the best other class of every single-region removal.
    """
    head = net.fc if hasattr(net, "fc") else net.get_classifier()
    regions = np.unique(segments)
    rng = np.random.default_rng(0)
    variants = removed(image, segments, [regions[rng.random(regions.size) < 0.3] for _ in range(32)])
    head.bias -= net(variants).mean(dim=0)
    original = int(net(removed(image, segments, [regions[:0]]))[0].argmax())
    singles = net(removed(image, segments, [[r] for r in regions]))
    others = singles.clone()
    others[:, original] = -torch.inf
    margin = float((others.max(dim=1).values - singles[:, original]).max())
    head.bias[original] += max(margin, 0.0) + 1e-3


def explain(image: np.ndarray, segments: np.ndarray, classifier) -> sedc.Explanation:
    return sedc.explain(image, classifier, segments, mode="mean", max_evals=MAX_EVALS)


def key(e: sedc.Explanation) -> tuple:
    return (e.removed, e.original_class, e.new_class, e.found, e.n_evaluations, e.stop_reason)


def snapshot(model: nn.Module) -> tuple[dict, list[bool]]:
    """Every parameter and buffer (cloned) and every submodule's training flag."""
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()])


def assert_untouched(model: nn.Module, before: tuple[dict, list[bool]]) -> None:
    state, flags = before
    assert [m.training for m in model.modules()] == flags
    now = model.state_dict()
    assert set(now) == set(state)
    for name, value in state.items():
        assert torch.equal(now[name], value), name


def caught(record: list, category: type, text: str) -> list:
    return [w for w in record if issubclass(w.category, category) and text in str(w.message)]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_training_mode_is_evaluated_in_eval_mode_and_handed_back(name, scene):
    image, segments = scene
    net = build(name, scene)
    batch = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # on copies: training mode changes the answer (and BatchNorm buffers)
        assert not torch.allclose(copy.deepcopy(net)(batch), copy.deepcopy(net).eval()(batch))
    before = snapshot(net)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = explain(image, segments, net)
    assert len(caught(record, UserWarning, TRAINING_MODE_WARNING)) == 1
    assert_untouched(net, before)
    assert got.found and key(got) == key(explain(image, segments, copy.deepcopy(net).eval()))


class Outputs(nn.Module):
    """A timm network returning its scores in another form: ``(logits, pooled)`` as Hugging Face's
    ``return_dict=False``, ``{"logits", "pooled"}``, or an object with ``.logits``."""

    def __init__(self, net: nn.Module, form: str) -> None:
        super().__init__()
        self.net, self.form = net, form

    def forward(self, x: torch.Tensor):
        pooled = self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        logits = self.net.get_classifier()(pooled)
        if self.form == "tuple":
            return logits, pooled
        if self.form == "dict":
            return {"pooled": pooled, "logits": logits}
        return SimpleNamespace(logits=logits, pooled=pooled)


@pytest.fixture(scope="module")
def convnext(scene) -> tuple[nn.Module, sedc.Explanation]:
    """ConvNeXt-Atto in eval mode and its answer on ``scene`` (its scores as a tensor)."""
    net = build("timm:convnext_atto", scene).eval()
    want = explain(*scene, net)
    assert want.found
    return net, want


@pytest.mark.parametrize("form", ["tuple", "dict", "object"])
def test_the_output_rule_on_a_real_architecture(form, scene, convnext):
    net, want = convnext
    assert key(explain(*scene, Outputs(net, form).eval())) == key(want)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_accelerate_exports_a_real_architecture(name, scene):
    """A real export (torch.onnx, dynamic batch) of a model in training mode: exported in eval
    mode, one warning, the model handed back as it was; ONNX Runtime's answer is torch's."""
    image, segments = scene
    net = build(name, scene)
    before = snapshot(net)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fast = sedc.accelerate(net, SHAPE)
    assert isinstance(fast, OnnxClassifier)
    assert len(caught(record, UserWarning, "training mode")) == 1
    assert caught(record, RuntimeWarning, "ONNX Runtime's scores differ") == []
    assert_untouched(net, before)
    net.eval()
    batch = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert float((fast(batch) - net(batch)).abs().max()) < 1e-4
    want = explain(image, segments, net)
    assert want.found and len(want.removed) >= 2  # calibrated: two levels deep
    assert key(explain(image, segments, fast)) == key(want)


def test_accelerate_applies_the_output_rule_to_a_real_architecture(scene, convnext):
    net, want = convnext
    fast = sedc.accelerate(Outputs(net, "object").eval(), SHAPE)
    assert key(explain(*scene, fast)) == key(want)
