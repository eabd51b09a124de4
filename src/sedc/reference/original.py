"""The original SEDC / SEDC-T algorithm: one image, one model call per candidate, numpy.

This is a faithful port of the authors' reference code (Vermeire & Martens), kept as the
baseline of the benchmark and the oracle of the tests. It deliberately keeps the original's
costs: host-side masking with a Python loop over segments, one ``classifier.predict`` call per
candidate, and re-evaluating a set each time it is reached from another parent. It differs only
where the original could not stop: it ends when every frontier entry has been expanded
(``stop_reason="exhausted"``), and accepts an optional ``max_evals``.

``classifier`` is any object with ``predict(batch)`` mapping a (B, H, W, C) float array in
[0, 1] to (B, K) scores; :class:`TorchPredictor` wraps a torch model that way.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from ..base.deprecated import renamed_attribute
from ..base.errors import InputError
from ..base.options import MODES
from ..base.outputs import eval_mode, to_scores, warn_training_mode


class ReferenceResult(NamedTuple):
    """The original's outputs (first four fields, in its order) plus bookkeeping."""

    explanation: np.ndarray
    segments_in_explanation: list
    perturbation: np.ndarray
    new_class: int
    predicted_class_index: int
    found: bool
    n_evaluations: int
    stop_reason: str


class TorchPredictor:
    """Give a torch model the ``predict`` method the original code expects.

    Parameters
    ----------
    model : callable
        Maps (B, C, H, W) float tensors to (B, K) scores (any output :func:`to_scores` accepts).
        A module in training mode is evaluated in eval mode in every call and restored after
        it; the adapter warns once, when it is made.
    device : str or torch.device
        Where the model runs; each call copies the batch there and the scores back.

    Attributes
    ----------
    n_calls, model_time :
        Number of ``predict`` calls and seconds spent in them (for the benchmark).
    """

    def __init__(self, model: Any, device: Any = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        self.n_calls = 0
        self.model_time = 0.0
        warn_training_mode(model, stacklevel=2)  # each predict runs in eval mode: one warning here

    def predict(self, batch: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        with eval_mode(self.model, warn=False), torch.inference_mode():
            scores = to_scores(self.model(tensor.to(self.device))).float().cpu().numpy()
        self.model_time += time.perf_counter() - start
        self.n_calls += 1
        return scores


def fill_image(image: np.ndarray, segments: np.ndarray, mode: Any, seed: int = 0) -> np.ndarray:
    """The fill of the original code for ``mode`` (``random`` seeded as in docs/algorithm.md).

    Computed here, independently of the fast path's fills (:mod:`sedc.core.perturbation`,
    :mod:`sedc.imaging.inpaint`), so that the tests compare two implementations. ``harmonic`` is
    not in the original and has no second implementation: it reuses sedc's. Beyond the original,
    ``mode`` may also be a ready (H, W, C) fill array or a callable ``(image, segments) -> fill``.
    """
    if isinstance(mode, np.ndarray):
        return np.asarray(mode, dtype=np.float32).reshape(image.shape)
    if callable(mode):
        return np.asarray(mode(image, segments), dtype=np.float32).reshape(image.shape)
    if mode == "mean":
        fill = np.zeros(image.shape, dtype=image.dtype)
        for ch in range(image.shape[2]):
            fill[:, :, ch] = np.mean(image[:, :, ch])
        return fill
    if mode == "blur":
        return cv2.GaussianBlur(image, (31, 31), 0).reshape(image.shape)
    if mode == "random":
        return np.random.default_rng(seed).random(image.shape, dtype=np.float32)
    if mode in ("inpaint", "inpaint_telea"):
        # As the original: each segment inpainted alone, from the 8-bit image, radius 3.
        flag = cv2.INPAINT_NS if mode == "inpaint" else cv2.INPAINT_TELEA
        fill = np.zeros(image.shape)
        image_absolute = (image * 255).astype("uint8")
        for j in np.unique(segments):
            mask = np.full([image_absolute.shape[0], image_absolute.shape[1]], 0)
            mask[segments == j] = 255
            inpainted = cv2.inpaint(image_absolute, mask.astype("uint8"), 3, flag).reshape(image.shape)
            fill[segments == j] = inpainted[segments == j] / 255.0
        return fill.astype(np.float32)  # as every other fill (the perturbed image is float32 anyway)
    if mode == "harmonic":
        from ..imaging.inpaint import harmonic_inpaint

        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
        labels = torch.from_numpy(np.unique(segments, return_inverse=True)[1].reshape(segments.shape))
        return harmonic_inpaint(tensor, labels)[0].permute(1, 2, 0).numpy()
    raise InputError(f"unknown mode {mode!r}; valid modes are {', '.join(map(repr, MODES))}")


def perturbed_image(image: np.ndarray, segments: np.ndarray, mode: Any, seed: int = 0) -> np.ndarray:
    """Deprecated name of :func:`fill_image` (it returns the fill, not a perturbed image)."""
    renamed_attribute("sedc.reference", "perturbed_image", "fill_image")
    return fill_image(image, segments, mode, seed)


def sedc(image: np.ndarray, classifier: Any, segments: np.ndarray, mode: str = "blur", *,
         seed: int = 0, max_evals: int | None = None) -> ReferenceResult:
    """Untargeted SEDC, as in the original code. See the module docstring."""
    return _search(image, classifier, segments, mode, None, seed, max_evals)


def sedc_t(image: np.ndarray, classifier: Any, segments: np.ndarray, target_class: int,
           mode: str = "blur", *, seed: int = 0, max_evals: int | None = None) -> ReferenceResult:
    """Targeted SEDC-T toward ``target_class``, as in the original code."""
    return _search(image, classifier, segments, mode, int(target_class), seed, max_evals)


def _search(image, classifier, segments, mode, target, seed, max_evals) -> ReferenceResult:
    image = np.asarray(image, dtype=np.float32)
    perturbed = fill_image(image, segments, mode, seed)
    result = classifier.predict(image[np.newaxis, ...])
    n_evals = 1
    c = int(np.argmax(result))
    p = result[0, c] if target is None else result[0, target]

    R, I, C, P = [], [], [], []  # explanations, their images, new classes, scores
    sets_to_expand_on, P_sets_to_expand_on = [], []
    expanded = []

    def evaluate(cs):
        nonlocal n_evals
        test_image = image.copy()
        for k in cs:
            test_image[segments == k] = perturbed[segments == k]
        result = classifier.predict(test_image[np.newaxis, ...])
        n_evals += 1
        c_new = int(np.argmax(result))
        if target is None:
            p_new = result[0, c]
            if c_new != c:
                R.append(cs), I.append(test_image), C.append(c_new), P.append(p_new)
            else:
                sets_to_expand_on.append(cs)
                P_sets_to_expand_on.append(p - p_new)
                expanded.append(False)
        else:
            p_new = result[0, target]
            if c_new == target:
                R.append(cs), I.append(test_image), C.append(c_new), P.append(p_new)
            else:
                sets_to_expand_on.append(cs)
                P_sets_to_expand_on.append(p_new - result[0, c])
                expanded.append(False)

    labels = np.unique(segments)
    stop_reason = "found"
    for j in labels:
        if max_evals is not None and n_evals >= max_evals:
            break
        evaluate([j])
    while len(R) == 0:
        if max_evals is not None and n_evals >= max_evals:
            stop_reason = "max_evals"
            break
        open_entries = [i for i, done in enumerate(expanded) if not done]
        if not open_entries or len(labels) < 2:
            stop_reason = "exhausted"
            break
        # np.argmax over the entries not yet expanded: the first of the highest priority.
        combo = max(open_entries, key=lambda i: (P_sets_to_expand_on[i], -i))
        expanded[combo] = True
        combo_set = [list(sets_to_expand_on[combo]) + [j] for j in labels if j not in sets_to_expand_on[combo]]
        for cs in combo_set:
            if max_evals is not None and n_evals >= max_evals:
                break
            evaluate(cs)
    if len(labels) < 2:
        R = []
        stop_reason = "exhausted"

    if not R:
        return ReferenceResult(np.zeros_like(image), [], image.copy(), c, c, False, n_evals, stop_reason)
    scores = np.array(P)
    best = int(np.argmax(p - scores)) if target is None else int(np.argmax(scores - p))
    segments_in_explanation = [int(s) for s in R[best]]
    explanation = np.zeros_like(image)
    for i in segments_in_explanation:
        explanation[segments == i] = image[segments == i]
    return ReferenceResult(explanation, segments_in_explanation, I[best], int(C[best]), c, True, n_evals,
                           stop_reason)
