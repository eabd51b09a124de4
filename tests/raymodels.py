"""A tiny model for the two-node Ray tests (``--model raymodels:build``), importable on the
cluster's nodes (their ``PYTHONPATH`` holds this folder).

On a node started with ``SEDC_TEST_GATE=DIR`` in its environment, the model also takes part, on
its batches of candidates (so that loading the model and the first evaluation pass), in a
handshake that pins down what a node holds when the test kills it: on the node with
``SEDC_TEST_ROLE=hold`` the model writes ``DIR/held`` and then waits (until its node is killed);
on the node with ``SEDC_TEST_ROLE=wait`` it waits for ``DIR/held`` first. Without these variables
(the single-process reference run) it is a plain, deterministic classifier.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

HOLD_LIMIT = 120.0  # seconds: never hang a test run for ever
WAIT_LIMIT = 60.0


class Cells(nn.Module):
    """Class k is the brightness of cell 2k of a 3 x 3 grid (5 classes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 1:  # candidate batches only: the model's load-time probe passes
            _gate()
        cells = nn.functional.adaptive_avg_pool2d(x.mean(1, keepdim=True), 3).flatten(1)
        return 20 * cells[:, 0::2]


def _gate() -> None:
    gate, role = os.environ.get("SEDC_TEST_GATE"), os.environ.get("SEDC_TEST_ROLE")
    if not gate or not role:
        return
    held = Path(gate) / "held"
    if role == "hold":
        held.touch()
        time.sleep(HOLD_LIMIT)
    elif role == "wait":
        deadline = time.monotonic() + WAIT_LIMIT
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def build() -> nn.Module:
    return Cells().eval()
