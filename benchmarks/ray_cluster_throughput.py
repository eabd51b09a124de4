"""Throughput of ``sedc explain`` on a two-node local Ray cluster against one process.

Both sides use the whole machine: the single process gets every core (torch threads), the
cluster gets two nodes of ``--cpus-per-node`` CPUs each (``ray start`` twice on this machine,
loopback only, see ``tests/helpers/raycluster.py``), one actor per node. Rounds are interleaved
(single, cluster, cluster, single, ...) so that both see the same machine load; each run is the
whole command, as a user times it (Python start-up, model load, joining Ray and starting the
actors included), timed from outside. Every round checks that the answers are identical.

Usage (the machine should be otherwise idle)::

    python benchmarks/ray_cluster_throughput.py --rounds 3 --images 8 \\
        --out docs/benchmarks/ray_two_node

writes ``ray_two_node.txt`` (the table) and ``ray_two_node.json`` (every timing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the two-node cluster helper of the tests

from helpers.raycluster import TwoNodeCluster, clean_env  # noqa: E402

PHOTOS = ("astronaut", "rocket", "coffee", "chelsea")  # 34, 70, 183, 343 evaluations


def write_photos(folder: Path, n: int, size: int = 224) -> None:
    """``n`` scikit-image sample photos (repeated), resized to ``size``."""
    import numpy as np
    from PIL import Image
    from skimage import data, transform

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        name = PHOTOS[k % len(PHOTOS)]
        photo = transform.resize(getattr(data, name)(), (size, size), anti_aliasing=True)
        Image.fromarray(np.clip(np.round(photo * 255), 0, 255).astype(np.uint8)).save(folder / f"{k}_{name}.png")


def run(images: Path, out: Path, extra: list[str], env: dict[str, str], max_time: float) -> tuple[float, dict]:
    """One ``sedc explain`` run: wall seconds and each image's answer."""
    args = [sys.executable, "-m", "sedc", "explain", str(images), "--out", str(out), "--overwrite",
            "--no-figures", "--quiet", "--max-time", str(max_time), *extra]
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return seconds, {r["image"]: (r["removed"], r["new_class"], r["n_evaluations"]) for r in rows}


def machine() -> str:
    """CPU model, cores, torch and Ray versions."""
    import ray
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}, Ray {ray.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--max-time", type=float, default=0.0, help="per image; 0 (default): no limit, so that answers do not depend on speed")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write OUT.txt and OUT.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sedc-ray-bench-"))
    images = work / "images"
    write_photos(images, args.images)
    pythonpath = [str(ROOT / "src")]
    cores = str(os.cpu_count() or 1)
    single_env = clean_env(PYTHONPATH=pythonpath[0], OMP_NUM_THREADS=cores)
    cluster = TwoNodeCluster(work / "cluster", pythonpath, cpus=args.cpus_per_node)
    try:
        cluster_env = clean_env(PYTHONPATH=pythonpath[0], OMP_NUM_THREADS=str(args.cpus_per_node),
                                RAY_AUTH_TOKEN=cluster.token)
        sides = {"single process": ([], single_env), "two-node Ray cluster": (["--ray", cluster.address], cluster_env)}
        times: dict[str, list[float]] = {name: [] for name in sides}
        reference = None
        for k in range(args.rounds):
            order = list(sides) if k % 2 == 0 else list(reversed(sides))
            for name in order:
                extra, env = sides[name]
                seconds, got = run(images, work / name.replace(" ", "_"), extra, env, args.max_time)
                reference = reference or got
                if got != reference:
                    raise RuntimeError(f"{name} gave different answers in round {k + 1}")
                times[name].append(seconds)
                print(f"round {k + 1}: {name}: {seconds:.1f} s", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(times, args, machine())


def report(times: dict[str, list[float]], args: argparse.Namespace, where: str) -> None:
    """Print the table (and write it with the raw timings when ``--out`` is given)."""
    single = statistics.median(times["single process"])
    lines = [f"sedc explain, {args.images} photos 224x224 ({', '.join(PHOTOS)}, repeated), efficientnet-lite0, "
             f"quickshift, blur, --max-time {args.max_time:g}; {args.rounds} interleaved rounds; whole commands timed",
             f"machine: {where}",
             f"cluster: 2 nodes x {args.cpus_per_node} CPU on this machine (ray start, loopback); "
             f"single process: all cores",
             "", "| run | median s | images/min | vs single process | all runs (s) |", "| --- | --- | --- | --- | --- |"]
    for name, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {name} | {median:.1f} | {60 * args.images / median:.1f} | {single / median:.2f}x | {runs} |")
    lines.append("\nanswers: identical in every run")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
        payload = {"machine": where, "images": args.images, "rounds": args.rounds, "max_time": args.max_time,
                   "cpus_per_node": args.cpus_per_node, "seconds": times}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
