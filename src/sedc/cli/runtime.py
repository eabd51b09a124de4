"""``--runtime auto|torch|onnxruntime``: which runtime runs the model in ``sedc explain``.

``auto`` picks ONNX Runtime when the model runs on the CPU in this process or in CPU worker
processes and onnxruntime is installed (``pip install 'sedc[onnx]'``), torch otherwise (CUDA, Ray,
TorchScript files, which ``torch.export`` cannot export).
A model that ONNX cannot export falls back to torch under ``auto`` (with a note on stderr) and is
a usage error under ``onnxruntime``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from ..base.errors import UsageError
from ..models.runtime import RUNTIMES

RUNTIME_CHOICES = ("auto", *RUNTIMES)


def add_runtime_option(p: Any) -> None:
    """The --runtime option (explain and demo)."""
    p.add_argument("--runtime", choices=RUNTIME_CHOICES, default="auto",
                   help="what runs the model: onnxruntime (CPU only; exported once and cached in "
                        "$SEDC_CACHE or ~/.cache/sedc), torch, or auto (default: onnxruntime on the "
                        "CPU when installed, torch on CUDA and with --ray)")


def onnxruntime_installed() -> bool:
    """Whether the packages of the ``sedc[onnx]`` extra can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))


def model_device_type(module: Any) -> str:
    """``"cpu"`` or ``"cuda"``: where the loaded module's weights are."""
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device.type
    return "cpu"


def on_cpu_only(args: argparse.Namespace, module: Any) -> bool:
    """Whether every model copy of this run is on the CPU of this machine."""
    if getattr(args, "ray", None) is not None:
        return False  # Ray actors may run elsewhere, without this machine's cache
    devices = getattr(args, "devices", None)
    if devices is not None:
        return all(d.strip().startswith("cpu") for d in devices.split(",") if d.strip())
    return model_device_type(module) == "cpu"


def resolve_runtime(args: argparse.Namespace, module: Any) -> str:
    """The runtime ``--runtime`` means for this run: ``"torch"`` or ``"onnxruntime"``."""
    choice = getattr(args, "runtime", "auto")
    if choice == "torch":
        return "torch"
    if choice == "onnxruntime":
        if not on_cpu_only(args, module):
            raise UsageError("--runtime onnxruntime runs the model on this machine's CPU; use "
                             "--device cpu (without --ray), or --runtime torch")
        if not onnxruntime_installed():
            raise UsageError("--runtime onnxruntime needs onnxruntime, onnx and onnxscript: "
                             "pip install 'sedc[onnx]'")
        return "onnxruntime"
    if is_torchscript(module):  # torch.export cannot take it: do not pay for a failed export
        return "torch"
    return "onnxruntime" if on_cpu_only(args, module) and onnxruntime_installed() else "torch"


def is_torchscript(module: Any) -> bool:
    """Whether the module holds TorchScript code (a loaded ``.pt`` file)."""
    import torch

    return any(isinstance(m, torch.jit.ScriptModule) for m in module.modules())


def runtime_module(args: argparse.Namespace, module: Any, input_size: int | tuple[int, int]) -> tuple[Any, str]:
    """The classifier to explain with and the runtime it runs on.

    Under ``auto``, a model that cannot be exported runs on torch (a note goes to stderr).
    """
    runtime = resolve_runtime(args, module)
    if runtime == "torch":
        return module, "torch"
    from ..base.errors import ExportError
    from ..models import accelerate

    try:
        height, width = input_size if isinstance(input_size, tuple) else (input_size, input_size)
        return accelerate(module, (3, height, width)), "onnxruntime"
    except ExportError as err:
        if args.runtime == "onnxruntime":
            raise UsageError(f"--runtime onnxruntime: {err}") from None
        print(f"note: running the model on torch: {err}", file=sys.stderr)
        return module, "torch"
