"""Tests for sedc.display.figure: the three-panel explanation figure."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from skimage import data, transform
from skimage.segmentation import slic

from sedc.core.result import Explanation
from sedc.display.figure import plot, summary
from sedc.models import imagenet_labels
from sedc.models.labels import class_name

LABELS = imagenet_labels()


@pytest.fixture(scope="module")
def explanation() -> Explanation:
    """A hand-built SEDC result on chelsea: three face segments blurred, 285 -> 281."""
    image = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32)
    segmentation = slic(image, n_segments=40, compactness=10, start_label=0)
    labels = np.unique(segmentation)
    centres = {int(s): np.argwhere(segmentation == s).mean(axis=0) for s in labels}
    removed = sorted(sorted(centres, key=lambda s: np.hypot(*(centres[s] - (100, 130))))[:3])
    mask = np.isin(segmentation, removed)
    blurred = cv2.GaussianBlur(image, (31, 31), 0)
    perturbed = np.where(mask[..., None], blurred, image)
    return Explanation(
        removed=removed, found=True, original_class=285, original_score=0.7932,
        new_class=281, new_score=0.4127, original_class_score=0.31, target=None, mode="blur",
        n_evaluations=57, elapsed=0.4, stop_reason="found", n_segments=len(labels), mask=mask,
        perturbed_image=torch.from_numpy(perturbed).permute(2, 0, 1)[None],
        explanation_image=np.where(mask[..., None], image, 0),
        image=torch.from_numpy(image).permute(2, 0, 1)[None], segmentation=segmentation,
    )


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_plot_saves_a_three_panel_png(tmp_path, explanation) -> None:
    path = tmp_path / "chelsea.png"
    fig = plot(explanation, LABELS, path)
    assert isinstance(fig, Figure)
    assert path.is_file() and path.stat().st_size > 50_000
    with Image.open(path) as png:
        assert png.format == "PNG"
        width, height = png.size
    assert 1000 <= width <= 2000 and 400 <= height <= 800
    assert _titles(fig) == ["Original: Egyptian cat 0.79", "Removed: 3 regions",
                            "Counterfactual: tabby 0.41"]
    footer = fig._supxlabel.get_text().replace("\n", " ")
    assert footer == (f"SEDC (blur): removing 3 of {explanation.n_segments} regions changes "
                      "'Egyptian cat' (0.79) to 'tabby' (0.41) — 57 model evaluations")
    for ax in fig.axes:
        assert not ax.get_xticks().size and not ax.get_yticks().size


def test_removed_regions_are_bright_and_the_rest_dimmed(explanation) -> None:
    fig = plot(explanation, LABELS)
    shown = np.asarray(fig.axes[1].images[0].get_array())
    original = explanation.image[0].permute(1, 2, 0).numpy()
    mask = explanation.mask

    def saturation(pixels: np.ndarray) -> float:
        return float((pixels.max(axis=1) - pixels.min(axis=1)).mean())

    assert np.allclose(shown[mask], 0.85 * original[mask] + 0.15 * np.array([1.0, 0.624, 0.11]),
                       atol=0.01)  # bright, lightly tinted
    assert saturation(shown[~mask]) < 0.3 * saturation(original[~mask])  # desaturated
    assert shown[~mask].std() < 0.5 * original[~mask].std()  # low contrast
    assert fig.axes[1].collections  # the outline


def test_not_found_and_targeted(explanation) -> None:
    missed = dataclasses.replace(explanation, removed=[], found=False, new_class=285,
                                 new_score=0.7932, stop_reason="max_time",
                                 mask=np.zeros_like(explanation.mask),
                                 perturbed_image=explanation.image)
    fig = plot(missed, LABELS, title="chelsea.png")
    assert _titles(fig) == ["Original: Egyptian cat 0.79", "Removed: nothing",
                            "No counterfactual found (max_time)"]
    assert fig._suptitle.get_text() == "chelsea.png"
    assert "no counterfactual found for 'Egyptian cat' (0.79) — time limit reached" in \
        fig._supxlabel.get_text().replace("\n", " ")

    targeted = dataclasses.replace(explanation, target=281, removed=explanation.removed[:1])
    text = summary(targeted, LABELS)
    assert text.startswith("SEDC-T (blur, target 'tabby'): removing 1 of ")
    assert "changes 'Egyptian cat' (0.79) to 'tabby' (0.41)" in text


def test_without_labels_and_with_one_channel(tmp_path, explanation) -> None:
    gray = dataclasses.replace(explanation, image=explanation.image[:, :1],
                               perturbed_image=explanation.perturbed_image[:, :1])
    path = tmp_path / "gray.png"
    fig = gray.plot(path=path)  # the Explanation method
    assert path.is_file()
    assert _titles(fig) == ["Original: class 285 0.79", "Removed: 3 regions",
                            "Counterfactual: class 281 0.41"]
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (224, 224, 3)
    assert class_name(5000, LABELS) == "class 5000"


def test_options_and_errors(explanation) -> None:
    fig = plot(explanation, LABELS, figsize=(9, 3), dpi=80)
    assert tuple(fig.get_size_inches()) == (9, 3) and fig.dpi == 80
    tiny = dataclasses.replace(explanation, original_score=0.0012)
    assert "0.0012" not in _titles(plot(tiny, LABELS))[0]
    assert _titles(plot(tiny, LABELS))[0] == "Original: Egyptian cat 1.2e-03"
    with pytest.raises(TypeError, match="must be a sedc.Explanation"):
        plot({"found": True})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dpi must be a positive int"):
        plot(explanation, dpi=0)
    flat = dataclasses.replace(explanation, image=explanation.image[0, 0])
    with pytest.raises(ValueError, match=r"explanation.image must have shape \(1, C, H, W\)"):
        plot(flat)
