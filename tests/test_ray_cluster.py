"""``sedc explain --ray`` against a real two-node Ray cluster started here (``ray start`` twice,
1 CPU per node, on loopback, with token auth): every address form gives the single-process
answers, a node killed mid-run loses nothing and is reported, and a cluster that cannot be
joined is one line and exit status 2. Each test stops what it started and checks, by process
group, that nothing is left (see ``helpers/raycluster.py``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.raycluster import TwoNodeCluster, clean_env, group_members
from PIL import Image

try:
    import ray
except ImportError:
    ray = None

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
PYTHONPATH = [str(SRC), str(TESTS)]
N_IMAGES = 8
MODEL = ["--model", "helpers.models:handshake_cells", "--input-size", "32", "--normalize", "none",
         "--segmentation", "grid", "--segments", "9", "--mode", "mean", "--max-time", "none", "--no-figures"]
SUMMARY = ("Done: ", "Median ", "Checks: ", "Results: ", "Ray: ")  # the summary lines sedc explain prints

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'sedc[ray]')")


def sedc(*args: str | Path, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sedc", "explain", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def cli_env(**extra: str) -> dict[str, str]:
    """No Ray setting of the user's; sedc and the test models from this checkout; one thread."""
    return clean_env(PYTHONPATH=":".join(PYTHONPATH), OMP_NUM_THREADS="1", **extra)


def answers(out: Path) -> dict[str, tuple]:
    """Each image's answer, checking that no image was written twice."""
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len({r["image"] for r in rows}) == len(rows), "an image was written twice"
    return {r["image"]: (r["found"], r["removed"], r["new_class"], r["n_evaluations"], r["stop_reason"])
            for r in rows}


def written(path: Path) -> bool:
    return path.exists() and bool(path.read_text(encoding="utf-8").strip())


def only_sedc_lines(stdout: str, images: Path) -> bool:
    """Whether every stdout line is a result line or a summary line of sedc."""
    return all(line.startswith((str(images), *SUMMARY)) for line in stdout.splitlines() if line)


def assert_nothing_left(cluster: TwoNodeCluster) -> None:
    killed = cluster.stop()
    left = {pgid: group_members(pgid) for pgid in cluster.pgids()}
    assert not any(left.values()), f"processes left: {left} (SIGKILLed: {killed})"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    return folder


@pytest.fixture(scope="module")
def reference(images: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The single-process run: its output folder and answers."""
    out = tmp_path_factory.mktemp("single")
    result = sedc(images, *MODEL, "--out", out, env=cli_env())
    assert result.returncode == 0, result.stderr
    return out, answers(out)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> TwoNodeCluster:
    started = TwoNodeCluster(tmp_path_factory.mktemp("cluster"), PYTHONPATH)
    yield started
    assert_nothing_left(started)


@pytest.mark.parametrize("form", ["HOST:PORT", "ray://", "auto"])
@pytest.mark.slow
@pytest.mark.cluster
@needs_ray
def test_every_address_form_gives_the_single_process_answers(form: str, cluster: TwoNodeCluster, images: Path,
                                                             reference: tuple[Path, dict], tmp_path: Path) -> None:
    # The token is in RAY_AUTH_TOKEN but RAY_AUTH_MODE is unset: sedc turns token mode on itself.
    env = cli_env(RAY_AUTH_TOKEN=cluster.token)
    address = {"HOST:PORT": cluster.address, "ray://": cluster.client_address, "auto": "auto"}[form]
    if form == "auto":
        env["RAY_ADDRESS"] = cluster.address
    result = sedc(images, *MODEL, "--out", tmp_path, "--ray", address, env=env)
    assert result.returncode == 0, result.stderr
    assert answers(tmp_path) == reference[1] and len(reference[1]) == N_IMAGES
    assert only_sedc_lines(result.stdout, images), result.stdout


@pytest.mark.slow
@pytest.mark.cluster
@needs_ray
def test_a_refused_token_is_one_line_and_exit_2(cluster: TwoNodeCluster, images: Path, tmp_path: Path) -> None:
    env = cli_env(RAY_AUTH_TOKEN="0" * 64)
    result = sedc(images, *MODEL, "--out", tmp_path, "--ray", cluster.address, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"sedc explain: error: cannot connect to Ray at {cluster.address}: auth (the cluster rejected the "
        "token from RAY_AUTH_TOKEN)"]
    assert result.stdout == "" and not written(tmp_path / "errors.jsonl")


@needs_ray
def test_no_cluster_there_is_exit_2_with_the_cause(images: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    refused = sedc(images, *MODEL, "--out", tmp_path, "--ray", "127.0.0.1:1", env=cli_env())
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        "sedc explain: error: cannot connect to Ray at 127.0.0.1:1: refused (nothing listens on that port)"]
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    with silent:
        address = f"ray://127.0.0.1:{silent.getsockname()[1]}"
        timeout = sedc(images, *MODEL, "--out", tmp_path, "--ray", address, "--ray-timeout", "2", env=cli_env())
    assert timeout.returncode == 2 and f"cannot connect to Ray at {address}: timeout" in timeout.stderr
    assert time.monotonic() - started < 60  # two Python start-ups, not Ray's minutes of retries
    assert not written(tmp_path / "errors.jsonl") and not written(tmp_path / "results.jsonl")


@needs_ray
def test_resume_with_nothing_left_does_not_join_ray(images: Path, reference: tuple[Path, dict]) -> None:
    out, _ = reference
    # Nothing listens on port 1: joining would fail with exit 2.
    result = sedc(images, *MODEL, "--out", out, "--ray", "127.0.0.1:1", env=cli_env())
    assert result.returncode == 0, result.stderr
    assert f"skipped {N_IMAGES} already in results.jsonl" in result.stdout


@pytest.mark.slow
@pytest.mark.cluster
@needs_ray
def test_a_node_killed_mid_run_loses_nothing_and_is_reported(images: Path, reference: tuple[Path, dict],
                                                             tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    # The worker node's actor holds its first chunk until its node dies; the head's actor waits
    # until then: the worker node dies with images in flight, and the head redoes them.
    cluster = TwoNodeCluster(tmp_path / "cluster", PYTHONPATH,
                             head_env={"SEDC_TEST_GATE": str(gate), "SEDC_TEST_ROLE": "wait"},
                             worker_env={"SEDC_TEST_GATE": str(gate), "SEDC_TEST_ROLE": "hold"})
    try:
        out = tmp_path / "out"
        args = [sys.executable, "-m", "sedc", "explain", str(images), *MODEL, "--out", str(out),
                "--ray", cluster.address]
        cli = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env(RAY_AUTH_TOKEN=cluster.token))
        deadline = time.monotonic() + 120
        while not (gate / "held").exists() and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.05)
        assert (gate / "held").exists(), cli.communicate(timeout=60)
        raylet = cluster.worker.raylet_pid()
        assert raylet is not None
        os.kill(raylet, signal.SIGKILL)
        stdout, stderr = cli.communicate(timeout=240)
        assert cli.returncode == 0, stderr
        assert answers(out) == reference[1]
        assert only_sedc_lines(stdout, images), stdout
        assert "Raylet" not in stdout and "Ray's messages in" in stdout, (stdout, stderr)
        assert "warning: Ray node 127.0.0.2" in stderr and "died (its raylet no longer answers)" in stderr
        summary = [line for line in stdout.splitlines() if line.startswith("Ray: ")]
        assert summary and summary[0].startswith("Ray: 1 actor died (nodes lost: 127.0.0.2"), stdout
        assert " 0 given up" in summary[0] and " 0 images retried" not in summary[0]
        deadline = time.monotonic() + 30  # the worker node's `ray start --block` stops the rest of it
        while group_members(cluster.worker.pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_members(cluster.worker.pgid)
    finally:
        assert_nothing_left(cluster)


def test_ray_and_devices_exclude_each_other(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from sedc.cli.main import main

    code = main(["explain", str(images), *MODEL, "--out", str(tmp_path), "--ray", "--devices", "cpu,cpu"])
    assert code == 2 and "--ray and --devices exclude each other" in capsys.readouterr().err
