"""Export a torch classifier to ONNX once, and keep the export in a cache on disk.

The cache lives in ``$SEDC_CACHE`` or the user cache folder (``$XDG_CACHE_HOME/sedc``, by default
``~/.cache/sedc``): one folder ``onnx/<key>/`` per export, holding ``model.onnx`` and its weights
file. The key hashes what determines the export: every tensor of the state dict and every buffer
(bytes, dtype, shape), the module structure (``repr``), the ``forward`` source of each module
class, the input shape and the versions of torch, onnx, onnxscript, onnxruntime and sedc.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import inspect
import io
import logging
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..base.errors import ExportError
from ..base.outputs import eval_mode, to_scores
from ..base.validate import module_device

__all__ = ["ExportError", "cache_dir", "cached_path", "export_key", "export_onnx",
           "export_to_cache"]

CACHE_FORMAT = 1   # bump when the export or the cache layout changes
EXPORT_BATCH = 2   # example batch of the export (torch.export specialises sizes 0 and 1)
MODEL_FILE = "model.onnx"
_VERSIONED = ("torch", "onnx", "onnxscript", "onnxruntime", "sedc")


def cache_dir() -> Path:
    """The cache folder: ``$SEDC_CACHE``, else ``$XDG_CACHE_HOME/sedc`` or ``~/.cache/sedc``.

    Returns
    -------
    pathlib.Path
    """
    if os.environ.get("SEDC_CACHE"):
        return Path(os.environ["SEDC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sedc"


def cached_path(model: nn.Module, shape: tuple[int, int, int]) -> Path:
    """Where the export of ``model`` for ``shape`` is (or would be) cached."""
    return cache_dir() / "onnx" / export_key(model, shape) / MODEL_FILE


def export_to_cache(model: nn.Module, shape: tuple[int, int, int]) -> Path:
    """Export ``model`` into its cache entry and return the file's path.

    The export is written to a temporary folder beside its final place and renamed into it, so a
    reader never sees half an export; when another process renamed its copy first, that one is
    kept.

    Raises
    ------
    ExportError
        When ``torch.onnx`` cannot export the model with a dynamic batch axis.
    """
    path = cached_path(model, shape)
    folder = path.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        export_onnx(model, shape, tmp / MODEL_FILE)
        if folder.exists() and not path.exists():  # a broken entry: replace it
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def export_key(model: nn.Module, shape: tuple[int, ...]) -> str:
    """Hash of what determines the export of ``model`` for input ``shape`` (32 hex digits)."""
    digest = hashlib.sha256()
    digest.update(f"format={CACHE_FORMAT} shape={tuple(shape)} {_versions()}\n".encode())
    digest.update(repr(model).encode())
    digest.update(_source_of(model).encode())
    tensors = dict(model.state_dict())
    tensors.update(dict(model.named_buffers()))  # non-persistent buffers too
    for name in sorted(tensors):
        tensor = tensors[name]
        if isinstance(tensor, torch.Tensor):
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
            digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()[:32]


def _tensor_bytes(tensor: torch.Tensor) -> Any:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    try:
        return flat.view(torch.uint8).numpy()
    except (RuntimeError, TypeError):  # e.g. quantized tensors
        buffer = io.BytesIO()
        torch.save(flat, buffer)
        return buffer.getvalue()


def _source_of(model: nn.Module) -> str:
    """The ``forward`` source of each module class in ``model`` (where Python can find it)."""
    parts = []
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: (c.__module__, c.__qualname__)):
        try:
            source = inspect.getsource(cls.forward)
        except Exception:  # noqa: BLE001 - no source (built-in, REPL, TorchScript): the name only
            source = ""
        parts.append(f"{cls.__module__}.{cls.__qualname__}\n{source}")
    return "\n".join(parts)


def _versions() -> str:
    found = []
    for name in _VERSIONED:
        try:
            found.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name}=?")
    return " ".join(found)


class _Scores(nn.Module):
    """``model`` followed by the output rule: what gets exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return to_scores(self.model(batch))


def export_onnx(model: nn.Module, shape: tuple[int, int, int], path: Path) -> None:
    """Export ``model`` in eval mode, output rule applied, to ``path`` with a dynamic batch axis.

    Uses the ``torch.export``-based exporter (``dynamo=True``): unlike the legacy TorchScript
    tracer, it refuses control flow that depends on the input values instead of freezing the
    branch the example took. The exporter's progress messages and logs are silenced.

    Raises
    ------
    ExportError
        When the model cannot be exported, or only with a fixed batch size.
    """
    example = torch.rand((EXPORT_BATCH, *shape), generator=torch.Generator().manual_seed(0))
    example = example.to(module_device(model) or torch.device("cpu"))
    try:
        with eval_mode(model, warn=False), _quiet():
            program = torch.onnx.export(
                _Scores(model).eval(), (example,), None, dynamo=True, verbose=False,
                input_names=["image"], output_names=["scores"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
            program.save(str(path))
    except Exception as err:  # noqa: BLE001 - every exporter failure becomes one clear error
        raise ExportError(export_failure_message(err)) from err
    batch_dim = program.model_proto.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch_dim.dim_param:
        raise ExportError(
            f"torch.onnx can export the model only with the batch size fixed at {batch_dim.dim_value}: "
            "its code depends on the number of images (for example a Python loop over the batch). "
            "Use runtime='torch' to run it with PyTorch.")


_OPERATOR_PATTERNS = (
    r"OpOverload\(op='([\w.:]+)'",    # dynamo exporter: no ONNX function for an ATen operator
    r"target=torch\.ops\.([\w.]+)",   # dynamo exporter: a node that failed to translate
    r"operator '([\w.:]+)'",          # legacy exporter: UnsupportedOperatorError
)


def failing_operator(err: BaseException) -> str | None:
    """The operator an export error names (e.g. ``'aten.linalg_eig'``), searching its causes."""
    seen: BaseException | None = err
    while seen is not None:
        for pattern in _OPERATOR_PATTERNS:
            match = re.search(pattern, str(seen))
            if match:
                return match.group(1).removesuffix(".default")
        seen = seen.__cause__ or seen.__context__
    return None


def export_failure_message(err: BaseException) -> str:
    """One sentence on what failed (the operator where known) and the fix."""
    operator = failing_operator(err)
    root = err
    while root.__cause__ is not None:
        root = root.__cause__
    lines = str(root).strip().splitlines()
    first = (lines[0] if lines else type(root).__name__)[:200]
    if operator:
        what = f"the operator {operator!r} has no ONNX translation"
    elif "DataDependent" in type(root).__name__ or "data-dependent" in first:
        what = f"its control flow depends on the input values ({first})"
    else:
        what = f"{type(root).__name__}: {first}"
    return f"torch.onnx cannot export the model: {what}. Use runtime='torch' to run it with PyTorch."


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter: its prints (stdout and stderr), torch's log records and warnings."""
    names = [n for n in list(logging.root.manager.loggerDict) if n == "torch" or n.startswith("torch.")]
    loggers = [logging.getLogger(n) for n in {"torch", *names}]
    levels = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in levels:
            logger.setLevel(level)
