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


def triples(*indices: int) -> list:
    return [(i, f"image {i}", None) for i in indices]


def test_recovery_counts_deaths_only_for_the_running_chunk():
    from sedc.scale.recovery import Recovery

    rule = Recovery(chunk_size=4, in_flight=2)
    lost = rule.died(triples(0, 1, 2, 3), triples(4, 5), survivors=2)
    assert lost.given_up == [] and lost.requeued == 6
    assert rule.deaths == {0: 1, 1: 1, 2: 1, 3: 1}  # the queued chunk had not started
    assert [[t[0] for t in chunk] for chunk in rule.queue] == [[0, 1], [2, 3], [4, 5]]  # spread over 2 x 2


def test_recovery_runs_twice_dead_images_alone_and_gives_up_only_a_known_culprit():
    from sedc.scale.recovery import Recovery

    rule = Recovery(chunk_size=4, in_flight=1)
    fresh = lambda: triples(9)  # noqa: E731
    rule.died(triples(0, 1), [], survivors=1)
    again = rule.next_chunk([], fresh)
    assert again == triples(0, 1)  # one death each: chunked again, not alone
    assert rule.died(again, triples(7), survivors=1).given_up == []  # shared: not sure yet
    assert [[t[0] for t in chunk] for chunk in rule.queue] == [[0], [1], [7]]  # alone ones first
    assert rule.next_chunk([triples(5)], fresh) is None  # a busy worker does not take [0]
    alone = rule.next_chunk([], fresh)
    assert alone == triples(0)
    assert rule.next_chunk([alone], fresh) is None  # nor does the worker running it alone
    lost = rule.died(alone, [], survivors=1)
    assert lost.given_up == triples(0) and lost.requeued == 0
    error = rule.given_up(0, "worker process on cpu", "exit code -9")
    assert error.kind == "worker-died" and error.message == (
        "worker process on cpu died 3 times on this image, the last time with it alone (exit code -9)")
    assert rule.died(triples(7), [], survivors=1).given_up == []  # one death, alone: not yet
    assert rule.died(triples(7), [], survivors=1).given_up == triples(7)
    assert "died twice on this image" in rule.given_up(7, "Ray actor on node", "gone").message


def test_a_worker_runs_its_chunks_in_order():
    worker = workers._Worker(None, "cpu", None, None)
    for chunk in (triples(0, 1), triples(2), triples(3, 4)):
        worker.chunks.append(chunk)
        worker.held.update((t[0], t) for t in chunk)
    worker.returned(0)
    assert worker.lost() == (triples(1), triples(2, 3, 4), False)
    worker.returned(1)
    assert worker.lost() == (triples(2), triples(3, 4), True)


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
