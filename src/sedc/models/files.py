"""Model files: TorchScript (``.pt``), ``torch.export`` programs (``.pt2``), and telling them apart.

.. warning::
   Loading either runs code from the file. Only load files you trust.
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..base.errors import InputError
from ..base.outputs import EXPORTED_IN_TRAINING, exported_in_training, to_scores
from .runtime import OnnxClassifier

__all__ = ["ExportedClassifier", "OnnxClassifier", "file_kind", "load_exported", "load_onnx",
           "load_torchscript"]


def file_kind(path: Path) -> str:
    """What a model file holds, from its contents: ``"export"``, ``"torchscript"``,
    ``"checkpoint"`` (``torch.save``), ``"onnx"`` (by suffix) or ``"unknown"``."""
    if path.suffix.lower() == ".onnx":
        return "onnx"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "unknown"
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "export"
    if any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") for n in names):
        return "checkpoint"
    return "unknown"


def load_torchscript(path: Path, device: torch.device) -> nn.Module:
    """A TorchScript file (``torch.jit.script(m).save(path)`` or ``torch.jit.trace``)."""
    try:
        return torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"could not load '{path}' as TorchScript ({_first_line(err)}); "
                         + _SAVE_HINT) from err


_SAVE_HINT = ("save the model with torch.jit.script(model).save(path) (.pt) or "
              "torch.export.save(torch.export.export(model, (example,)), path) (.pt2). A state_dict "
              "or a pickled model is not a runnable file: use a 'package.module:factory' spec whose "
              "factory builds the model and loads the weights")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class ExportedClassifier(nn.Module):
    """A ``torch.export`` program as a classifier module.

    ``train()`` / ``eval()`` change only this wrapper's flag (the program's dropout and BatchNorm
    behaviour was fixed when it was exported, and its own ``train()`` raises). A program exported
    with a fixed batch size is run on batches of that size: other batches are split, and the
    last chunk is padded by repeating its last image.

    Parameters
    ----------
    program : torch.nn.Module
        ``torch.export.load(path).module()``.
    batch : int or None
        The program's fixed batch size, or None when the batch dimension is dynamic.
    """

    def __init__(self, program: nn.Module, batch: int | None = None) -> None:
        super().__init__()
        self.program = program
        self.batch = batch
        for module in program.modules():
            module.training = False

    def train(self, mode: bool = True) -> "ExportedClassifier":
        """Set this wrapper's flag only; the program's behaviour cannot change."""
        self.training = bool(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of ``x`` (see :func:`~sedc.models.outputs.to_scores`)."""
        return run_fixed_batch(lambda b: to_scores(self.program(b)), x, self.batch)


def run_fixed_batch(run: Any, x: torch.Tensor, batch: int | None) -> torch.Tensor:
    """``run(x)``, or ``run`` on chunks of exactly ``batch`` rows (the last one padded)."""
    if batch is None or x.shape[0] == batch:
        return run(x)
    parts = []
    for start in range(0, x.shape[0], batch):
        chunk = x[start:start + batch]
        real = chunk.shape[0]
        if real < batch:
            chunk = torch.cat([chunk, chunk[-1:].expand(batch - real, *chunk.shape[1:])])
        parts.append(run(chunk)[:real])
    return torch.cat(parts)


def load_exported(path: Path, device: torch.device) -> tuple[ExportedClassifier, tuple[int, int] | None]:
    """Load a ``torch.export`` ``.pt2`` file.

    Returns
    -------
    (ExportedClassifier, (height, width) or None)
        The module on ``device`` and the input size fixed in the program (None when dynamic).

    Raises
    ------
    ValueError
        For a file that is not a readable export, a program exported in training mode, or one
        whose input is not a single (B, C, H, W) image batch.
    """
    try:
        with _quiet("torch.export"):
            program = torch.export.load(str(path))
    except Exception as err:  # noqa: BLE001 - zip, deserialisation and version errors alike
        raise InputError(f"could not load '{path}' as a torch.export program "
                         f"({_first_line(err)}); " + _SAVE_HINT) from None
    batch, size = _input_shape(program, path)
    if str(device) != "cpu":
        program = _to_device(program, device)
    module = program.module()
    if exported_in_training(module):
        raise InputError(f"'{path}': {EXPORTED_IN_TRAINING}")
    return ExportedClassifier(module, batch), size


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Hold back a library logger's tracebacks while we turn its failure into one line."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _input_shape(program: Any, path: Path) -> tuple[int | None, tuple[int, int] | None]:
    names = list(program.graph_signature.user_inputs)
    shapes = [tuple(node.meta["val"].shape) for node in program.graph.nodes
              if node.op == "placeholder" and node.name in names and "val" in node.meta]
    if len(names) != 1 or len(shapes) != 1 or len(shapes[0]) != 4:
        raise InputError(f"'{path}': the exported program must take one (B, C, H, W) image batch; "
                         f"it takes {len(names)} input(s) of shape(s) {shapes}")
    batch, _, height, width = shapes[0]
    fixed = lambda v: int(v) if isinstance(v, int) else None  # noqa: E731 - SymInt when dynamic
    size = (fixed(height), fixed(width))
    return fixed(batch), (size if None not in size else None)


def _to_device(program: Any, device: torch.device) -> Any:
    try:
        from torch.export.passes import move_to_device_pass
    except ImportError:  # older torch: move the module instead
        return program
    return move_to_device_pass(program, device)


# --------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------
def load_onnx(path: Path, device: torch.device) -> tuple[OnnxClassifier, tuple[int, int] | None]:
    """Load an ``.onnx`` file; returns the module and the input size it fixes (or None)."""
    try:
        import onnxruntime  # noqa: F401
    except Exception as err:  # noqa: BLE001
        raise InputError(f"'{path}' needs onnxruntime, which cannot be imported here "
                         f"({_first_line(err)}); pip install onnxruntime") from None
    try:
        model = OnnxClassifier(path)
        shape = list(model.session.get_inputs()[0].shape)
    except Exception as err:  # noqa: BLE001 - ONNX Runtime's own error types
        raise InputError(f"could not load '{path}' as an ONNX model ({_first_line(err)})") from None
    if len(shape) != 4:
        raise InputError(f"'{path}': the ONNX model must take one (B, C, H, W) image batch; its "
                         f"input is {shape}")
    height, width = shape[2:]
    size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    return model, size
