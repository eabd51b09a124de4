"""Worker processes that die at any point: the run never hangs, and loses only their images.

A worker can die anywhere: inside a model batch, while pickling or sending a result (leaving half
a message in its pipe), or while waiting for work. Whatever the moment, every image must come back
exactly once, either explained exactly as :func:`sedc.explain` explains it alone, or reported as
``ImageError(kind="worker-died")``, within a bounded time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import struct
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection

import numpy as np
import pytest
from helpers.compare import assert_same
from helpers.images import grid, tiny_image
from helpers.models import RandomExit, TinyNet

import sedc
from sedc import ImageError
from sedc.scale import iter_explain, workers

SIDE, CELL = 63, 21  # big enough that a result (about 150 kB) takes several pipe writes to send


def image(seed: int, sentinel: bool = False) -> np.ndarray:
    return tiny_image(seed, sentinel, side=SIDE)


def cells() -> np.ndarray:
    return grid(SIDE, CELL)


def test_half_a_message_from_a_dead_writer_is_end_of_file_not_a_wait():
    receive, send = mp.Pipe(duplex=False)
    send.send(("result", 0, ("error", "complete")))
    os.write(send.fileno(), struct.pack("!i", 1 << 20) + b"only the start of a message")
    send.close()  # the writer died in the middle of its second message
    started = time.monotonic()
    messages, alive = workers._drain(receive)
    assert messages == [("result", 0, ("error", "complete"))] and not alive
    assert time.monotonic() - started < 5


class Killer(threading.Thread):
    """Sends SIGKILL to a random live worker process at random moments (from the parent side)."""

    def __init__(self, rng: random.Random, kills: int, within: float) -> None:
        super().__init__(daemon=True)
        self.times = sorted(rng.uniform(0, within) for _ in range(kills))
        self.rng = rng.random()
        self.killed = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        pick = random.Random(self.rng)
        start = time.monotonic()
        for at in self.times:
            if self.stopped.wait(max(0.0, start + at - time.monotonic())):
                return
            live = [p for p in mp.active_children() if p.name.startswith("sedc-worker") and p.is_alive()]
            if live:
                try:
                    os.kill(pick.choice(live).pid, signal.SIGKILL)
                    self.killed += 1
                except ProcessLookupError:
                    pass


class CountEndOfFile:
    """Counts, in the parent, the pipes that ended in the middle of a message (a death mid-send)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mid_message = 0
        original = Connection._recv

        def recv(conn, size, *args, **kwargs):
            try:
                return original(conn, size, *args, **kwargs)
            except OSError as err:  # EOFError at a message boundary; this one inside a message
                self.mid_message += "end of file during message" in str(err)
                raise

        monkeypatch.setattr(Connection, "_recv", recv)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_workers_killed_at_random_points_never_hang(monkeypatch: pytest.MonkeyPatch, capsys):
    # forkserver forks each worker from a process that has imported torch already: the same
    # channels as spawn, started in milliseconds instead of seconds, so 50 runs take a minute.
    monkeypatch.setattr(workers, "START_METHOD", "forkserver")
    mp.get_context("forkserver").set_forkserver_preload(["torch", "sedc.scale.workers", "helpers.models"])
    eof = CountEndOfFile(monkeypatch)
    seg = cells()
    n_images = 8
    imgs = [image(seed) for seed in range(n_images)]
    doomed = 5
    imgs[doomed] = image(doomed, sentinel=True)  # kills every worker that evaluates it
    expected = {i: sedc.explain(img, TinyNet(), seg, mode="mean") for i, img in enumerate(imgs) if i != doomed}
    rng = random.Random(2026)
    stats: Counter = Counter()
    slowest = 0.0
    for run in range(50):
        model = RandomExit(kill_seed=run, rate=rng.choice([0.0, 0.005, 0.02]),
                           timer_rate=rng.choice([0.0, 0.3, 0.6]), max_delay=0.5)
        killer = Killer(rng, kills=rng.randint(0, 3), within=1.5)
        # A slow reader: workers block half-way through sending a result, so kills land mid-message.
        pause = rng.choice([0.0, 0.0, 0.1])
        killer.start()
        started = time.monotonic()
        seen: dict[int, object] = {}
        try:
            for index, result in iter_explain(imgs, model, seg, mode="mean", devices=["cpu", "cpu"],
                                              on_error="return", batch_size=rng.choice([1, 4, 16])):
                assert index not in seen, f"run {run}: image {index} came back twice"
                seen[index] = result
                time.sleep(pause)
        finally:
            killer.stopped.set()
            killer.join()
        elapsed = time.monotonic() - started
        slowest = max(slowest, elapsed)
        assert elapsed < 120, f"run {run} took {elapsed:.0f} s"
        assert sorted(seen) == list(range(n_images)), f"run {run}"
        assert isinstance(seen[doomed], ImageError) and seen[doomed].kind == "worker-died"
        for index, result in seen.items():
            if index == doomed:
                continue
            if isinstance(result, ImageError):
                assert result.kind == "worker-died", f"run {run}: {result}"
                stats["reported"] += 1
            else:
                assert_same(result, expected[index])
                stats["explained"] += 1
        stats["sigkills"] += killer.killed
    stats["mid-message deaths"] = eof.mid_message
    with capsys.disabled():
        print(f"\n50 runs, slowest {slowest:.1f} s: {dict(stats)}")
    assert stats["explained"] > 0 and stats["reported"] > 0 and stats["sigkills"] > 0
