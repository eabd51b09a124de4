"""Make docs/img/inpainting.png and time the two inpainting fills (see docs/inpainting.md).

Run from the repository root:  PYTHONPATH=src python docs/make_inpainting_figure.py [--threads N]
(--threads sets torch's intra-op threads for the timing; default: torch's own default).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data, transform  # noqa: E402
from skimage.segmentation import mark_boundaries  # noqa: E402

from sedc.imaging.inpaint import harmonic_inpaint, opencv_inpaint  # noqa: E402
from sedc.imaging.segmentation import segment  # noqa: E402

ROUNDS = 21
OUTPUT = Path(__file__).parent / "img" / "inpainting.png"


def interleaved_medians(image: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Median seconds of OpenCV NS and of the harmonic fill, timed in alternation."""
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].float()
    label_tensor = torch.from_numpy(labels)
    opencv_inpaint(image, labels), harmonic_inpaint(tensor, label_tensor)  # warm up
    times: dict[str, list[float]] = {"opencv": [], "harmonic": []}
    for _ in range(ROUNDS):
        start = time.perf_counter()
        opencv_inpaint(image, labels, method="ns")
        times["opencv"].append(time.perf_counter() - start)
        start = time.perf_counter()
        harmonic_inpaint(tensor, label_tensor)
        times["harmonic"].append(time.perf_counter() - start)
    return float(np.median(times["opencv"])), float(np.median(times["harmonic"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for the timing")
    threads = parser.parse_args().threads
    if threads is not None:
        torch.set_num_threads(threads)
    image = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True)
    labels = segment(image, "quickshift", kernel_size=4, max_dist=200, ratio=0.2)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].float()
    opencv_fill = opencv_inpaint(image, labels, method="ns")
    harmonic = harmonic_inpaint(tensor, torch.from_numpy(labels))[0].permute(1, 2, 0).numpy()
    converged = harmonic_inpaint(tensor.double(), torch.from_numpy(labels), tol=1e-9)[0].permute(1, 2, 0).numpy()

    print(f"{labels.max() + 1} quickshift segments; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}")
    print(f"harmonic (tol 1e-3) vs converged: max |diff| {np.abs(harmonic - converged).max():.4f}, "
          f"mean {np.abs(harmonic - converged).mean():.5f}")
    print(f"harmonic vs OpenCV NS: mean |diff| {np.abs(harmonic - opencv_fill).mean():.4f}")
    opencv_s, harmonic_s = interleaved_medians(image, labels)
    print(f"torch threads {torch.get_num_threads()}: OpenCV NS loop {1e3 * opencv_s:.1f} ms, "
          f"harmonic {1e3 * harmonic_s:.1f} ms (median of {ROUNDS} interleaved runs)")

    panels = [
        (mark_boundaries(image, labels, color=(1, 1, 0)), f"original, {labels.max() + 1} quickshift segments"),
        (opencv_fill, "OpenCV NS, one cv2.inpaint per segment"),
        (np.clip(harmonic, 0, 1), "harmonic_inpaint, all segments at once"),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.3))
    for axis, (picture, title) in zip(axes, panels):
        axis.imshow(picture)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    figure.tight_layout()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUTPUT, dpi=110)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
