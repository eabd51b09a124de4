"""Measuring implementations: the timed model proxy, photos and answers, runs, the implementations."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

#: The ``--quick`` photo: the fewest model evaluations of the four in every mode we measured
#: (mean mode: astronaut 35, rocket 68, coffee 111, chelsea 218; identical across implementations).
QUICK_PHOTO = "astronaut"
#: The ``--scaling`` photo when ``--images`` is not given.
SCALING_PHOTO = "coffee"
THROUGHPUT_IMAGES = 16
SCALING_SEGMENTS = (25, 50, 100, 200)
BASELINE = "original"
SCHEMA = "sedc-benchmark/1"
RULE = "=" * 72


# --------------------------------------------------------------------------------------------
# Measuring the model
# --------------------------------------------------------------------------------------------

class TimedModel(nn.Module):
    """An ``nn.Module`` proxy that times and counts the forward calls of ``module``.

    ``module`` is a registered submodule, so ``parameters()``, ``buffers()`` and ``modules()``
    yield the wrapped model's (device and architecture detection keep working). On CUDA the
    clock is started and stopped after ``torch.cuda.synchronize()``, so ``seconds`` is the time
    the device spent in the model, not the time to queue it.

    Attributes
    ----------
    seconds : float
        Time spent inside ``forward`` since the last :meth:`reset`.
    calls, rows : int
        Forward calls and evaluated images (batch rows) since the last :meth:`reset`.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.eval()
        self.reset()

    def reset(self) -> None:
        """Zero the counters."""
        self.seconds = 0.0
        self.calls = 0
        self.rows = 0

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        cuda = isinstance(x, torch.Tensor) and x.is_cuda
        if cuda:
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        out = self.module(x, *args, **kwargs)
        if cuda:
            torch.cuda.synchronize(x.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.rows += int(x.shape[0]) if isinstance(x, torch.Tensor) and x.ndim > 0 else 1
        return out


def synchronize(device: torch.device) -> None:
    """Wait for ``device`` (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Data: photos, answers, runs
# --------------------------------------------------------------------------------------------

@dataclass
class Photo:
    """A benchmark image: (H, W, 3) float32 array in [0, 1], its segments and device tensor."""

    name: str
    array: np.ndarray
    segments: np.ndarray
    tensor: torch.Tensor | None = None

    @property
    def n_segments(self) -> int:
        return int(len(np.unique(self.segments)))

    def to(self, device: torch.device) -> "Photo":
        tensor = torch.from_numpy(np.ascontiguousarray(self.array.transpose(2, 0, 1)))[None].to(device)
        return Photo(self.name, self.array, self.segments, tensor)


@dataclass
class Answer:
    """What an implementation returned for one photo."""

    found: bool
    segments: list[int]
    new_class: int
    original_class: int
    n_evaluations: int | None = None
    stop_reason: str | None = None

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        """What must match between implementations: sorted segments and new class."""
        return tuple(sorted(int(s) for s in self.segments)), int(self.new_class)

    def describe(self, labels: Sequence[str] | None = None) -> str:
        name = f" ({labels[self.new_class]})" if labels and 0 <= self.new_class < len(labels) else ""
        if not self.found:
            return f"no counterfactual ({self.stop_reason or 'not found'}), class {self.new_class}{name}"
        return f"segments {list(self.key[0])} -> class {self.new_class}{name}"


@dataclass
class RunRecord:
    """One timed run: one implementation explaining one photo in one mode.

    ``round`` is -1 for warm-up runs (checked for answers, not used in the statistics).
    """

    mode: str
    implementation: str
    photo: str
    round: int
    seconds: float
    model_seconds: float
    model_calls: int
    model_evaluations: int
    answer: Answer
    n_segments: int | None = None
    cap: int | None = None

    @property
    def warmup(self) -> bool:
        return self.round < 0

    @property
    def capped(self) -> bool:
        """Whether a max_evals cap cut the search short (or may have: it stopped exactly at it)."""
        if self.answer.stop_reason == "max_evals":
            return True
        n = self.answer.n_evaluations if self.answer.n_evaluations is not None else self.model_evaluations
        return self.cap is not None and n >= self.cap

    def to_dict(self) -> dict:
        out = asdict(self)
        out["warmup"] = self.warmup
        out["capped"] = self.capped
        return out


@dataclass
class Implementation:
    """An SEDC implementation under test.

    ``run(photo, mode, ctx, max_evals)`` returns an :class:`Answer`; it must call the model held
    in ``ctx.models[model_key]``. ``exact`` implementations must reproduce the original exactly
    (a mismatch fails the benchmark); inexact ones (float16) are only marked invalid.
    """

    name: str
    description: str
    run: Callable[..., Answer]
    model_key: str = "default"
    exact: bool = True
    cuda_only: bool = False
    supports_max_evals: bool = False
    runtime: str = "torch"


# --------------------------------------------------------------------------------------------
# The implementations
# --------------------------------------------------------------------------------------------

def _original_runner(model_key: str = "default") -> Callable[..., Answer]:
    def run(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
        from ..reference import TorchPredictor, sedc

        predictor = TorchPredictor(ctx.models[model_key], ctx.device)
        r = sedc(photo.array, predictor, photo.segments, mode, max_evals=max_evals)
        return Answer(bool(r.found), [int(s) for s in r.segments_in_explanation], int(r.new_class),
                      int(r.predicted_class_index), int(r.n_evaluations), r.stop_reason)
    return run


def _tuple_answer(result: tuple) -> Answer:
    _, segments, _, new_class, predicted = result
    segments = [int(s) for s in segments]
    return Answer(bool(segments), segments, int(new_class), int(predicted))


def _run_pytorch(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
    from ..core.seed import sedc_pytorch

    return _tuple_answer(sedc_pytorch(photo.tensor, ctx.models["default"], photo.segments, mode=mode,
                                      device=ctx.device))


def _run_batch(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
    from ..core.seed import sedc_pytorch_batch

    return _tuple_answer(sedc_pytorch_batch(photo.tensor, ctx.models["default"], photo.segments,
                                            mode=mode, device=ctx.device, batch_size=8))


def _explain_answer(e: Any) -> Answer:
    return Answer(bool(e.found), [int(s) for s in e.removed], int(e.new_class), int(e.original_class),
                  int(e.n_evaluations), e.stop_reason)


def _explain_runner(model_key: str = "default", **options: Any) -> Callable[..., Answer]:
    def run(photo: Photo, mode: str, ctx: "Context", max_evals: int | None = None) -> Answer:
        from ..core.explain import explain

        return _explain_answer(explain(photo.tensor, ctx.models[model_key], photo.segments, mode=mode,
                                       device=ctx.device, max_evals=max_evals, **options))
    return run


IMPLEMENTATIONS: dict[str, Implementation] = {
    impl.name: impl for impl in (
        Implementation("original", "sedc.reference.sedc: numpy, one model call per candidate",
                       _original_runner(), supports_max_evals=True),
        Implementation("pytorch", "sedc.sedc_pytorch: torch, one candidate per call", _run_pytorch),
        Implementation("batch", "sedc.sedc_pytorch_batch(batch_size=8)", _run_batch),
        Implementation("explain", "sedc.explain with its defaults (batch_size='auto', "
                       "channels_last='auto')", _explain_runner(), supports_max_evals=True),
        Implementation("explain-fp16", "sedc.explain(autocast=True): float16 on CUDA",
                       _explain_runner(autocast=True), exact=False, cuda_only=True,
                       supports_max_evals=True),
        Implementation("explain-cl", "sedc.explain(channels_last=True) with the model's weights in "
                       "channels-last memory format", _explain_runner("channels_last", channels_last=True),
                       model_key="channels_last", cuda_only=True, supports_max_evals=True),
        Implementation("original-onnx", "sedc.reference.sedc with the model on ONNX Runtime "
                       "(sedc.accelerate): the runtime's gain alone", _original_runner("onnxruntime"),
                       model_key="onnxruntime", supports_max_evals=True, runtime="onnxruntime"),
        Implementation("explain-onnx", "sedc.explain with the model on ONNX Runtime (sedc.accelerate)",
                       _explain_runner("onnxruntime"), model_key="onnxruntime", supports_max_evals=True,
                       runtime="onnxruntime"),
    )
}


def default_implementations(device: torch.device) -> list[str]:
    """The implementations that run on ``device`` here (ONNX Runtime: CPU, when installed)."""
    return [name for name, impl in IMPLEMENTATIONS.items()
            if (device.type == "cuda" or not impl.cuda_only)
            and (impl.runtime != "onnxruntime" or (device.type == "cpu" and onnxruntime_installed()))]


def onnxruntime_installed() -> bool:
    """Whether the ``sedc[onnx]`` packages can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in ("onnxruntime", "onnx", "onnxscript"))


# --------------------------------------------------------------------------------------------
# Context: everything a case needs
# --------------------------------------------------------------------------------------------

@dataclass
class Context:
    """Shared state of one benchmark invocation, handed to every case."""

    args: argparse.Namespace
    device: torch.device
    model_name: str
    labels: list[str]
    input_size: int
    models: dict[str, TimedModel]
    photos: list[Photo]
    modes: list[str]
    implementations: list[str]
    repeats: int
    warmup_rounds: int
    out: Any = sys.stdout
    results: dict[str, Any] = field(default_factory=dict)

    def print(self, *parts: Any) -> None:
        print(*parts, file=self.out, flush=True)


def timed_run(ctx: Context, impl: Implementation, photo: Photo, mode: str, round_index: int,
              max_evals: int | None = None) -> RunRecord:
    """Run ``impl`` on ``photo`` once and measure it."""
    model = ctx.models[impl.model_key]
    model.reset()
    synchronize(ctx.device)
    start = time.perf_counter()
    if impl.supports_max_evals:
        answer = impl.run(photo, mode, ctx, max_evals=max_evals)
    else:
        answer = impl.run(photo, mode, ctx)
    synchronize(ctx.device)
    seconds = time.perf_counter() - start
    if answer.n_evaluations is None:
        answer.n_evaluations = model.rows
    return RunRecord(mode, impl.name, photo.name, round_index, seconds, model.seconds, model.calls,
                     model.rows, answer, photo.n_segments, max_evals)


def warm_up_model(ctx: Context) -> None:
    """One forward call of every model variant (kernels, allocator, lazy init)."""
    x = torch.rand(2, 3, ctx.input_size, ctx.input_size, device=ctx.device)
    with torch.inference_mode():
        for model in ctx.models.values():
            model(x)
            model.reset()
    synchronize(ctx.device)


