"""Make docs/img/checks_fills.png: a blur counterfactual that does not hold under the mean fill.

Explains scikit-image photos with the built-in model (quickshift segments, the paper's setting)
in blur mode with the ``fills`` check, takes the first photo whose counterfactual does not hold
under ``mean``, and draws: the photo with the removed regions outlined | the blur counterfactual |
the same regions under mean | under harmonic inpainting, each titled with the model's class.

Run from the repository root:  PYTHONPATH=src python docs/make_checks_figure.py [--all]
(--all explains every candidate photo and prints its fills line instead of stopping at the first).
The model runs on ONNX Runtime when ``sedc[onnx]`` is installed (scores within ~1e-7 of torch's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

import sedc  # noqa: E402
from sedc.imaging.samples import sample_photo  # noqa: E402
from sedc.imaging.segmentation import segment  # noqa: E402

CANDIDATES = ("chelsea", "coffee", "rocket", "astronaut", "immunohistochemistry", "hubble_deep_field")
OUTPUT = Path(__file__).parent / "img" / "checks_fills.png"
PANEL_FILLS = ("mean", "harmonic")  # drawn beside the blur counterfactual


def fast_model(module: torch.nn.Module) -> object:
    """The model on ONNX Runtime when available, else as it is."""
    try:
        return sedc.accelerate(module)
    except ImportError:
        return module


def scores_under(model, image: np.ndarray, seg: np.ndarray, removed: list[int], fill: str) -> np.ndarray:
    """The model's scores for ``image`` with ``removed`` replaced by the reference's ``fill``."""
    filled = np.where(np.isin(seg, removed)[:, :, None], sedc.reference.fill_image(image, seg, fill), image)
    with torch.inference_mode():
        out = model(torch.from_numpy(filled.astype(np.float32).transpose(2, 0, 1).copy())[None])
    return sedc.models.to_scores(out)[0].float().numpy()


def draw(name: str, image: np.ndarray, seg: np.ndarray, e: sedc.Explanation, model, names: list[str]) -> None:
    """The four panels, saved to :data:`OUTPUT`."""
    outline = image.copy()
    outline[find_boundaries(np.isin(seg, e.removed), mode="inner")] = (1.0, 0.62, 0.11)
    panels = [(outline, f"{name}: {names[e.original_class]} {e.original_score:.2f}\n"
                        f"{len(e.removed)} of {e.n_segments} regions outlined")]
    panels.append((e.perturbed_image[0].permute(1, 2, 0).numpy(),
                   f"removed with blur (the search): {names[e.new_class]} {e.new_score:.2f}\na counterfactual"))
    for fill in PANEL_FILLS:
        scores = scores_under(model, image, seg, e.removed, fill)
        k = int(scores.argmax())
        holds = "still a counterfactual" if k != e.original_class else "NOT a counterfactual"
        filled = np.where(np.isin(seg, e.removed)[:, :, None], sedc.reference.fill_image(image, seg, fill), image)
        panels.append((filled, f"same regions, {fill}: {names[k]} {scores[k]:.2f}\n{holds}"))
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 4.5), layout="constrained")
    for axis, (picture, title) in zip(axes, panels):
        axis.imshow(np.clip(picture, 0, 1))
        axis.set_title(title, fontsize=9.5)
        axis.axis("off")
    figure.suptitle(f"--check fills on the blur counterfactual: {e.checks.summary()}", fontsize=11)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUTPUT, dpi=100)
    print(f"wrote {OUTPUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="explain every candidate, draw the first match")
    every = parser.parse_args().all
    loaded = sedc.models.load()
    model = fast_model(loaded.module)
    drawn = False
    for name in CANDIDATES:
        image = sample_photo(name)
        seg = segment(image, "quickshift")
        e = sedc.explain(image, model, seg, mode="blur", checks=("verify", "fills"))
        line = e.checks.summary() if e.found else "no counterfactual"
        print(f"{name}: {loaded.class_names[e.original_class]} -> {loaded.class_names[e.new_class]}, "
              f"k={len(e.removed)}, {e.n_evaluations} + {e.n_check_evaluations} evaluations: {line}")
        if e.found and not drawn and not e.checks.fill_outcomes["mean"]["holds"]:
            draw(name, image, seg, e, model, loaded.class_names)
            drawn = True
            if not every:
                return


if __name__ == "__main__":
    main()
