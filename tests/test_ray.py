"""sedc.scale.ray on a local two-CPU Ray instance: results equal sedc.explain, failures stay per image."""

from __future__ import annotations

import functools
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch
from helpers.images import fail_loading, grid, load_array, tiny_image
from helpers.models import BrokenFactory, ExitOnSentinel, TinyNet, TrainModeNet

import sedc
from sedc import ImageError

TESTS = str(Path(__file__).resolve().parent)

try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'sedc[ray]')")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance for the module. Its workers import ``helpers.*`` from this folder (on
    their ``PYTHONPATH``)."""
    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process")
    path = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def explain_ray(items, model, **options):
    from sedc.scale.ray import iter_explain_ray

    results = dict(iter_explain_ray(items, model, grid(), mode="mean", **options))
    assert sorted(results) == list(range(len(items)))
    return [results[i] for i in range(len(items))]


def assert_same(got, want) -> None:
    assert isinstance(got, sedc.Explanation), got
    assert (got.removed, got.new_class, got.n_evaluations, got.stop_reason) == (
        want.removed, want.new_class, want.n_evaluations, want.stop_reason)
    assert (got.mask == want.mask).all()
    assert got.mask.flags.writeable and got.image.numpy().flags.writeable


@needs_ray
def test_results_equal_explain(cluster):
    images = [tiny_image(seed) for seed in range(3)]
    results = explain_ray(images, TinyNet(), chunk_size=2)
    for image, got in zip(images, results):
        assert_same(got, sedc.explain(image, TinyNet(), grid(), mode="mean"))


@needs_ray
def test_failing_loader_is_reported_for_its_image_only(cluster):
    images = [tiny_image(seed) for seed in range(3)]
    items = [functools.partial(load_array, image) for image in images]
    items.insert(1, functools.partial(fail_loading, "broken.png"))
    results = explain_ray(items, TinyNet(), on_error="return")
    assert isinstance(results[1], ImageError) and results[1].index == 1
    assert "OSError" in results[1].message and "broken.png" in results[1].message
    for image, got in zip(images, results[:1] + results[2:]):
        assert_same(got, sedc.explain(image, TinyNet(), grid(), mode="mean"))
    with pytest.raises(ImageError, match="broken.png"):
        explain_ray(items, TinyNet())


@needs_ray
def test_an_image_that_kills_its_actor_is_given_up_and_takes_no_other_down(cluster):
    # Its chunk dies twice (the other images in it are retried), then it dies alone: given up.
    images = [tiny_image(0), tiny_image(9, sentinel=True), tiny_image(1), tiny_image(2)]
    events = []
    results = explain_ray(images, ExitOnSentinel(), on_error="return", num_actors=1, on_event=events.append)
    assert isinstance(results[1], ImageError) and results[1].kind == "worker-died"
    assert results[1].message.startswith("Ray actor on ")  # its chunk died twice, then it alone:
    assert "died 3 times on this image, the last time with it alone (" in results[1].message
    for i in (0, 2, 3):
        assert_same(results[i], sedc.explain(images[i], TinyNet(), grid(), mode="mean"))
    assert sum(e.given_up for e in events) == 1 and events[-1].given_up == 1
    assert all(e.node_gone is False for e in events)  # the actors died, their node did not
    assert "back in the queue" in str(events[0])


@needs_ray
def test_iter_explain_runs_on_the_open_session_and_reports_deaths(cluster):
    from sedc.scale import iter_explain

    images = [tiny_image(0), tiny_image(9, sentinel=True)]
    events = []
    results = dict(iter_explain(images, ExitOnSentinel(), grid(), mode="mean", ray_address="auto",
                                on_event=events.append, on_error="return"))
    assert_same(results[0], sedc.explain(images[0], TinyNet(), grid(), mode="mean"))
    assert results[1].kind == "worker-died" and "died twice on this image" in results[1].message
    # Given up when it dies alone after a death before (scale/recovery.py). Whether a death also
    # took image 0 down depends on how Ray packed the two images: alone both times (2 events), or
    # together at first (then 2 or 3 events); image 0 is answered either way.
    assert [e.given_up for e in events] in ([0, 1], [0, 0, 1])
    assert all(e.requeued >= 1 for e in events[:-1]) and events[-1].requeued == 0
    assert ray.is_initialized()  # a session opened by the caller is left running


@needs_ray
def test_factory_that_cannot_build_the_model(cluster):
    with pytest.raises(RuntimeError, match="could not build the model.*no model here"):
        explain_ray([tiny_image(0)], BrokenFactory(), num_actors=1)


def test_options_are_checked_before_starting_anything():
    from sedc.scale.ray import iter_explain_ray

    with pytest.raises(TypeError, match="unknown option"):
        next(iter_explain_ray([tiny_image(0)], TinyNet(), devices=["cpu"]))
    with pytest.raises(ValueError, match="on_error"):
        next(iter_explain_ray([tiny_image(0)], TinyNet(), on_error="ignore"))
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_explain_ray([tiny_image(0)], TinyNet(), batch_size=0))


@pytest.mark.slow
def test_builtin_model_factory_pickles(real_model):
    # What an actor does with it: unpickle, build, score. The result is the built-in model.
    from sedc.models import ModelSpec

    factory = pickle.loads(pickle.dumps(ModelSpec("efficientnet-lite0")))
    assert factory == ModelSpec("efficientnet-lite0")
    module = factory()
    assert isinstance(module, torch.nn.Module)
    image = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        scores = module.eval()(image)
        expected = real_model.module(image)
    assert scores.shape == (2, 1000)
    torch.testing.assert_close(scores, expected)


def test_builtin_model_is_a_deprecated_model_spec():
    from sedc.models import ModelSpec
    from sedc.scale.ray import BuiltinModel

    with pytest.warns(DeprecationWarning, match="ModelSpec"):
        factory = BuiltinModel("efficientnet-lite0")
    assert isinstance(factory, ModelSpec) and factory.name == "efficientnet-lite0"
    assert pickle.loads(pickle.dumps(factory)) == factory


def test_missing_ray_names_the_extra(monkeypatch):
    from sedc.scale.ray import iter_explain_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'sedc\[ray\]'"):
        next(iter_explain_ray([tiny_image(0)], TinyNet()))


@needs_ray
def test_actors_that_can_never_start_are_a_cluster_error_not_a_hang(cluster, monkeypatch):
    import sedc.scale.ray_pool as pool

    monkeypatch.setattr(pool, "NO_ACTOR_LIMIT", 2.0)
    with pytest.raises(pool.RayClusterError, match="no Ray actor could start in 2 s"):
        explain_ray([tiny_image(0)], TinyNet(), num_gpus_per_actor=1)  # a CPU-only cluster


def test_training_mode_model_warns_once_and_is_untouched(cluster):
    import copy
    import warnings

    model = TrainModeNet()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = [tiny_image(seed) for seed in range(2)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        results = explain_ray(images, model, chunk_size=1)
    assert sum("training mode" in str(w.message) for w in record) == 1
    evaluated = copy.deepcopy(model).eval()
    for image, got in zip(images, results):
        assert_same(got, sedc.explain(image, evaluated, grid(), mode="mean"))
    assert model.training and all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@needs_ray
def test_training_mode_factory_warns_once_in_the_driver(cluster):
    import warnings

    from helpers.models import TrainModeNet, train_mode_net

    images = [tiny_image(seed) for seed in range(2)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        results = explain_ray(images, train_mode_net, chunk_size=1, num_actors=2)
    assert sum("training mode" in str(w.message) for w in record) == 1  # two actors, one warning
    for image, got in zip(images, results):
        assert_same(got, sedc.explain(image, TrainModeNet().eval(), grid(), mode="mean"))


@needs_ray
def test_actors_run_the_search_they_are_given(cluster):
    images = [tiny_image(seed) for seed in range(2)]
    results = explain_ray(images, TinyNet(), search="fast", batch_size=4)
    for image, got in zip(images, results):
        want = sedc.explain(image, TinyNet(), grid(), mode="mean", search="fast", batch_size=4)
        assert_same(got, want)
        assert (got.search, got.n_model_calls) == ("fast", want.n_model_calls)
