"""Run a classifier on a faster runtime: ONNX Runtime on the CPU.

:func:`accelerate` exports a torch model once with ``torch.onnx`` (dynamic batch axis, the output
rule of :mod:`sedc.models.outputs` applied first), caches the export on disk
(:mod:`sedc.models.export`) and returns an :class:`OnnxClassifier`: a callable from a
(B, C, H, W) float tensor to (B, K) scores that works wherever a classifier does (``explain``,
``explain_many``, worker processes, Ray, the seed API and the reference).

Exactness: ONNX Runtime computes the same network with other kernels, so its scores differ from
torch's by float rounding (up to about 7e-7 on EfficientNet-Lite0's softmax). On the four test
photos this gives the same counterfactuals; a tie between two candidates that close could still
go the other way. Each :func:`accelerate` compares the two on a random batch and warns when they
differ by more than ``VERIFY_ATOL + VERIFY_RTOL * max|torch scores|``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..base.errors import (
    ExportError,
    InputError,
    InputTypeError,
    MissingDependencyError,
    ModelFileNotFoundError,
)
from ..base.outputs import eval_mode, to_scores, warn_training_mode
from .export import cached_path, export_to_cache

__all__ = ["RUNTIMES", "ExportError", "OnnxClassifier", "accelerate"]

RUNTIMES = ("onnxruntime", "torch")
"""What :func:`accelerate` can return: ONNX Runtime on the CPU, or the torch model as it is."""

VERIFY_ATOL = 1e-5
VERIFY_RTOL = 1e-4
"""Tolerance of the check after export: ``atol + rtol * max|torch scores|``."""

VERIFY_BATCH = 3  # not the export's example size (2): the check also proves the batch is dynamic
_INSTALL_HINT = "install it with: pip install 'sedc[onnx]'"


def accelerate(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224), *,
               runtime: str = "onnxruntime", device: Any = None) -> nn.Module:
    """A faster classifier computing the same scores as ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, C, H, W) float batches to scores in any form the output rule accepts (tensor,
        ``.logits``, mapping, tuple). It is exported in eval mode and left as it was.
    input_shape : sequence of 3 int
        (C, H, W) of the images the classifier will see.
    runtime : {"onnxruntime", "torch"}
        ``"onnxruntime"`` exports the model (or reuses its cached export) and runs it on ONNX
        Runtime; ``"torch"`` returns ``model`` unchanged.
    device : str or torch.device, optional
        ``None`` or the CPU for ``"onnxruntime"``; on CUDA use ``runtime="torch"``.

    Returns
    -------
    OnnxClassifier or torch.nn.Module
        A callable from (B, C, H, W) tensors to (B, K) scores.

    Raises
    ------
    ExportError
        When ``torch.onnx`` cannot export the model; names the failing operator where it can.
    ImportError
        When onnxruntime, onnx or onnxscript is missing (``pip install 'sedc[onnx]'``).

    Warns
    -----
    UserWarning
        When ``model`` is in a training mode that changes what it computes (it is exported in
        eval mode and left as it was).
    RuntimeWarning
        When the exported model's scores differ from torch's beyond the tolerance.

    Examples
    --------
    >>> fast = sedc.accelerate(sedc.models.load().module, (3, 224, 224))   # doctest: +SKIP
    >>> e = sedc.explain(photo, fast)                                    # doctest: +SKIP
    """
    shape = _check_arguments(model, input_shape, runtime, device)
    if runtime == "torch":
        return model
    _require_onnx()
    warn_training_mode(model, stacklevel=2)  # exported in eval mode, left as it was
    classifier = _from_cache(model, shape)
    if classifier is None:
        classifier = OnnxClassifier(export_to_cache(model, shape), shape)
        difference, bound = compare_with_torch(classifier, model, shape)
        if difference > bound:
            warnings.warn(f"ONNX Runtime's scores differ from torch's by up to {difference:.3g} on a "
                          f"random batch (tolerance {bound:.3g}); explanations may differ from the "
                          "torch model's. Use runtime='torch' for the model's own numbers.",
                          RuntimeWarning, stacklevel=2)
    return classifier


def _from_cache(model: nn.Module, shape: tuple[int, int, int]) -> OnnxClassifier | None:
    """The cached export, if there is one that opens and agrees with ``model``; else None.

    An entry that does not open or disagrees (a broken file, or a key collision) is removed.
    """
    path = cached_path(model, shape)
    if not path.exists():
        return None
    classifier = OnnxClassifier(path, shape)
    try:
        difference, bound = compare_with_torch(classifier, model, shape)
    except Exception:  # noqa: BLE001 - an unreadable entry is re-exported
        difference, bound = float("inf"), 0.0
    if difference <= bound:
        return classifier
    shutil.rmtree(path.parent, ignore_errors=True)
    return None


def compare_with_torch(classifier: nn.Module, model: nn.Module,
                       shape: tuple[int, int, int]) -> tuple[float, float]:
    """Largest score difference on a seeded random batch, and the tolerance it is held to."""
    batch = torch.rand((VERIFY_BATCH, *shape), generator=torch.Generator().manual_seed(1))
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    with torch.inference_mode(), eval_mode(model, warn=False):
        expected = to_scores(model(batch.to(device))).float().cpu()
    got = classifier(batch)
    bound = VERIFY_ATOL + VERIFY_RTOL * float(expected.abs().max())
    if got.shape != expected.shape:
        return float("inf"), bound
    return float((got - expected).abs().max()), bound


class OnnxClassifier(nn.Module):
    """A classifier running an ONNX model on ONNX Runtime's CPU provider.

    A ``torch.nn.Module`` without parameters, so that every path that takes a module takes it.
    The session opens on first use with torch's thread count (``torch.get_num_threads()`` as
    intra-op threads, one inter-op thread, sequential execution, all graph optimisations), and
    reopens when that count changes. Pickling keeps only the file's path, the input shape and
    the thread setting: worker processes and Ray actors reopen the session from the file, which
    must exist where they run.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file (its external weights file, if any, beside it). Its first input takes
        the (B, C, H, W) float batch; its first output is the (B, K) scores. A file exported for a
        fixed batch of one is run one image at a time.
    input_shape : sequence of int, optional
        (C, H, W), for information.
    threads : int, optional
        Intra-op threads; None follows ``torch.get_num_threads()``.
    """

    runtime = "onnxruntime"

    def __init__(self, path: str | os.PathLike, input_shape: Sequence[int] | None = None, *,
                 threads: int | None = None) -> None:
        super().__init__()
        self.path = str(path)
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.threads = threads
        self._session: Any = None
        self._session_threads = 0
        self._input_name = ""
        self._one_at_a_time = False
        self.eval()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "input_shape": self.input_shape, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["input_shape"], threads=state["threads"])

    def extra_repr(self) -> str:
        return f"{self.path!r}, input_shape={self.input_shape}, runtime='onnxruntime'"

    @property
    def session(self) -> Any:
        """The ONNX Runtime session, opened (or reopened for a new thread count) on access."""
        threads = self.threads or torch.get_num_threads()
        if self._session is None or threads != self._session_threads:
            self._session = open_session(self.path, threads)
            self._session_threads = threads
            feed = self._session.get_inputs()[0]
            self._input_name = feed.name
            self._one_at_a_time = bool(feed.shape) and feed.shape[0] == 1
        return self._session

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, K) scores of a (B, C, H, W) float batch, on the batch's device."""
        session = self.session
        array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        if self._one_at_a_time and array.shape[0] != 1:
            out = np.concatenate([session.run(None, {self._input_name: row[None]})[0] for row in array])
        else:
            out = session.run(None, {self._input_name: array})[0]
        return torch.from_numpy(out).to(batch.device)


def open_session(path: str, threads: int) -> Any:
    """An ONNX Runtime CPU session for ``path`` with ``threads`` intra-op threads.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist here (for example on a Ray node without the cache).
    """
    import onnxruntime as ort

    if not Path(path).exists():
        raise ModelFileNotFoundError(f"ONNX model file '{path}' not found on this machine (worker processes "
                                "and Ray actors reopen it from the path: share SEDC_CACHE, or use "
                                "runtime='torch')")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    # Threads busy-wait a moment between runs (ONNX Runtime's default). While sedc composed batches
    # with torch's OpenMP threads, spinning fought them for the cores (2.24 s spinning, 1.38 s not,
    # chelsea, 343 evaluations), so it was off. Batches are now composed by numpy on the calling
    # thread alone, and waking sleeping threads for every operator is what cost: on the 2-core CI
    # machine, chelsea, blur, batch_size="auto" (4), 6 interleaved rounds, medians: 7.89 ms per
    # evaluation spinning, 9.22 not; the model alone at batch 4: 7.21 and 7.15 ms per image.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _check_arguments(model: Any, input_shape: Any, runtime: Any, device: Any) -> tuple[int, int, int]:
    if runtime not in RUNTIMES:
        raise InputError(f"runtime must be one of {', '.join(map(repr, RUNTIMES))}; got {runtime!r}")
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"input_shape must be (C, H, W), three positive integers; got {input_shape!r}")
    if runtime == "onnxruntime" and device is not None and torch.device(device).type != "cpu":
        raise InputError(f"runtime='onnxruntime' runs on the CPU; got device={device!r} "
                         "(use runtime='torch' on CUDA)")
    return shape  # type: ignore[return-value]


def _require_onnx() -> None:
    for name in ("onnxruntime", "onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError as err:
            raise MissingDependencyError(f"runtime='onnxruntime' needs the {name} package; {_INSTALL_HINT}") from err
