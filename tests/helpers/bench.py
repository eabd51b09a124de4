"""A benchmark context small enough for unit tests (tests/test_benchmark.py, tests/test_runtime.py)."""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch

from helpers.models import stripe_model
from sedc.benchmark import measure


def tiny_context(implementations):
    """A ``measure.Context`` of one 24 x 24 photo in 6 vertical stripes, the left one red, with
    :class:`helpers.models.StripeModel`: every search flips after a handful of evaluations.

    Parameters
    ----------
    implementations : list of str
        The implementations the context runs (names of ``measure.IMPLEMENTATIONS``).
    """
    array = np.zeros((24, 24, 3), np.float32)
    array[:, :, 1] = np.linspace(0, 0.3, 24)[None, :]
    array[:, :, 2] = np.linspace(0, 0.3, 24)[:, None]
    array[:, :4, 0] = 1.0
    segments = np.repeat(np.arange(6), 4)[None, :].repeat(24, axis=0)  # 6 vertical stripes
    args = argparse.Namespace(images=None, scaling_max_evals=6, scaling_explain_max_evals=None,
                              scaling_segments=[4, 8], throughput_repeats=1, throughput_max_time=30.0,
                              throughput_images=16, throughput_warmup=0,
                              throughput_variants=["loop", "many", "workers"])
    return measure.Context(args=args, device=torch.device("cpu"), model_name="tiny", labels=["red", "other"],
                           input_size=24, models={"default": measure.TimedModel(stripe_model())},
                           photos=[measure.Photo("stripes", array, segments)], modes=["mean"],
                           implementations=implementations, repeats=2, warmup_rounds=1, out=io.StringIO())
