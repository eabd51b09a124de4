"""sedc.scale.Task: one image with settings of its own, on every backend.

Each result equals sedc.explain on that image alone with the task's settings, in one process and
in worker processes; ``untargeted_if_predicted`` turns "toward class t" into plain SEDC when the
model already predicts t.
"""

from __future__ import annotations

import functools

import pytest
from helpers.compare import alone, assert_same
from helpers.images import grid, load_array, tiny_image
from helpers.models import TinyNet

import sedc
from sedc import ImageError
from sedc.scale import Task, explain_many


def predicted(image) -> int:
    return alone(image, mode="mean", max_evals=1).original_class


def other_class(image) -> int:
    return (predicted(image) + 1) % 3  # TinyNet has 3 classes


def tasks_and_expected():
    """Four images: modes and targets differ per image (the run's options: mode blur, no target)."""
    imgs = [tiny_image(seed) for seed in range(4)]
    settings = [{"mode": "mean"}, {"mode": "mean", "target": other_class(imgs[1])},
                {}, {"mode": "inpaint", "max_evals": 5}]
    tasks = [Task(functools.partial(load_array, image), s) for image, s in zip(imgs, settings)]
    expected = [alone(image, **{"mode": "blur", **s}) for image, s in zip(imgs, settings)]
    return tasks, expected


@pytest.mark.parametrize("backend", [{}, {"window": 3}, {"devices": ["cpu"]}],
                         ids=["one-process", "window-3", "worker-process"])
def test_tasks_equal_explain_alone(backend):
    tasks, expected = tasks_and_expected()
    results = explain_many(tasks, TinyNet(), grid(), mode="blur", **backend)
    for got, want in zip(results, expected):
        assert_same(got, want)
        assert got.mode == want.mode and got.target == want.target
    assert [r.mode for r in results] == ["mean", "mean", "blur", "inpaint"]
    assert results[1].target is not None and results[3].stop_reason == "max_evals"


@pytest.mark.parametrize("backend", [{}, {"devices": ["cpu"]}], ids=["one-process", "worker-process"])
def test_untargeted_if_predicted(backend):
    image = tiny_image(0)
    own, other = predicted(image), other_class(image)
    tasks = [Task(image, {"target": own}, untargeted_if_predicted=True),
             Task(image, {"target": other}, untargeted_if_predicted=True),
             Task(image, {"target": own})]
    results = explain_many(tasks, TinyNet(), grid(), mode="mean", on_error="return", **backend)
    assert_same(results[0], alone(image, mode="mean"))  # already predicted: plain SEDC
    assert results[0].target is None
    assert_same(results[1], alone(image, mode="mean", target=other))
    assert results[1].target == other
    assert isinstance(results[2], ImageError) and "already the predicted class" in results[2].message


def test_task_validates_its_settings_at_once():
    with pytest.raises(TypeError, match="whole run"):
        Task(tiny_image(0), {"batch_size": 4})
    with pytest.raises(ValueError, match="unknown mode"):
        Task(tiny_image(0), {"mode": "nope"})
    assert Task(1, {"target": 2}).apply(sedc.ExplainOptions(mode="mean")).target == 2


def test_tasks_on_ray_equal_explain_alone():
    """Ray actors run the same runner: a Task's settings travel with its image."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'sedc[ray]')")
    import os
    from pathlib import Path

    from sedc.scale.ray import iter_explain_ray

    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process")
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    try:
        tasks, expected = tasks_and_expected()
        results = dict(iter_explain_ray(tasks, TinyNet(), grid(), mode="blur", chunk_size=2))
    finally:
        ray.shutdown()
    for index, want in enumerate(expected):
        assert_same(results[index], want)
        assert results[index].mode == want.mode and results[index].target == want.target
