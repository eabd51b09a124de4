"""Running the command line in a subprocess, reading its rows, writing photos for it
(tests/test_cli.py, tests/test_cli_dataset.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[2] / "src"  # the code under test
TINY_LABELS = ["apple", "banana", "cherry"]
"""Labels of the three classes of ``helpers.models.Cells(every=4)``."""


def cli_env(*paths: str | Path, **extra: str) -> dict[str, str]:
    """The subprocess environment: the tree's ``src`` (then ``paths``) first on PYTHONPATH, ahead
    of what was there, so that the subprocess runs the code under test and not an installed sedc;
    and one intra-op thread: on a busy shared CPU, oversubscribed OpenMP threads make PyTorch many
    times slower (measured: 3 vs 75 evaluations in 5 s)."""
    python_path = [str(SRC), *map(str, paths)]
    if os.environ.get("PYTHONPATH"):
        python_path.append(os.environ["PYTHONPATH"])
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra, "PYTHONPATH": os.pathsep.join(python_path)}


def sedc_cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
             ) -> subprocess.CompletedProcess:
    """Run ``python -m sedc ARGS`` and capture its output (environment: :func:`cli_env`)."""
    return subprocess.run([sys.executable, "-m", "sedc", *map(str, args)], capture_output=True,
                          text=True, env=cli_env() if env is None else env, timeout=timeout)


def rows(out: Path) -> list[dict]:
    """The rows of ``out/results.jsonl``, in order."""
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def save_photo(path: Path, name: str = "chelsea", size: int = 224) -> Path:
    """Write scikit-image's photo ``name``, resized to ``size`` x ``size``, as an 8-bit image file."""
    from PIL import Image
    from skimage import data, transform

    photo = transform.resize(getattr(data, name)(), (size, size), anti_aliasing=True)
    Image.fromarray((photo * 255).round().astype(np.uint8)).save(path)
    return path
