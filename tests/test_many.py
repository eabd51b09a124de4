"""explain_many / iter_explain: each result equals sedc.explain on that image alone; images share
model batches within the batch size; each result's time is its own search's."""

from __future__ import annotations

import functools
import re

import helpers.scoretable as tb
import numpy as np
import pytest
from helpers.compare import alone, assert_same
from helpers.images import fail_loading, grid, load_array, tiny_image
from helpers.models import ExitOnSentinel, FailOnSentinel, FailOnSentinelBatch, TinyNet

import sedc
from sedc import ImageError
from sedc.imaging.samples import DEMO_PHOTOS
from sedc.scale import explain_many, iter_explain

N_IMAGES = 4


def images(n: int = N_IMAGES) -> list[np.ndarray]:
    return [tiny_image(seed) for seed in range(n)]


@pytest.mark.parametrize("batch_size", [1, "auto"])
@pytest.mark.parametrize("window", [1, 3])
def test_explain_many_equals_explain(batch_size, window):
    model = TinyNet()
    results = explain_many(images(), model, grid(), mode="mean", batch_size=batch_size, window=window)
    assert len(results) == N_IMAGES
    for image, got in zip(images(), results):
        assert_same(got, alone(image, mode="mean", batch_size=batch_size))
    assert {len(r.removed) for r in results} == {1, 2, 4}  # varied searches, all found


def test_explain_many_shares_model_batches_across_images():
    # Three images whose searches change nothing: each evaluates all 63 non-empty sets. With a
    # window of 3 their candidates share model batches (the scale runner falls back to one image
    # per batch only when a shared batch fails, so a broken shared path would go unnoticed).
    tables = [tb.table_from([1.0, 0.0], [[0.0, 0.0]] * 6) for _ in range(3)]
    model = tb.TableModel(tables)
    seg = np.arange(6)[None]
    results = sedc.explain_many([tb.image(i) for i in range(3)], model, seg, mode=tb.fill, window=3, batch_size=64)
    assert [(e.found, e.stop_reason, e.n_evaluations) for e in results] == [(False, "exhausted", 64)] * 3
    assert len(model.seen) == len(set(model.seen)) == 3 * 64  # no candidate scored twice
    shared = [ids for ids in model.batch_ids if len(set(ids)) > 1]
    assert shared and max(len(set(ids)) for ids in shared) == 3
    for ids in model.batch_ids:  # each image's rows are contiguous, in job order
        assert ids == sorted(ids)


def test_explain_many_batches_respect_the_batch_size():
    tables = [tb.table_from([1.0, 0.0], [[0.0, 0.0]] * 6) for _ in range(3)]
    model = tb.TableModel(tables)
    seg = np.arange(6)[None]
    results = sedc.explain_many([tb.image(i) for i in range(3)], model, seg, mode=tb.fill, window=3, batch_size=8)
    assert [e.n_evaluations for e in results] == [64] * 3
    assert max(model.batches) == 8 and any(len(set(ids)) > 1 for ids in model.batch_ids)


def test_per_image_segments_and_loaders():
    imgs = images()
    loaders = [functools.partial(load_array, image) for image in imgs]
    segs = [grid(), np.arange(144).reshape(12, 12) // 48, grid(), grid()]  # image 1: 3 horizontal bands
    results = explain_many(loaders, TinyNet(), segs, mode="blur", window=2)
    for image, seg, got in zip(imgs, segs, results):
        assert_same(got, alone(image, segments=seg, mode="blur"))
    assert results[1].n_segments == 3


def test_iter_explain_yields_every_index_once():
    gen = (tiny_image(seed) for seed in range(7))  # any iterable, consumed lazily
    seen = [index for index, result in iter_explain(gen, TinyNet(), grid(), mode="mean", window=3)
            if isinstance(result, sedc.Explanation)]
    assert sorted(seen) == list(range(7))


def test_elapsed_ends_when_the_search_ends_not_when_the_result_is_built():
    # Two identical searches finish in the same round; iter_explain builds each result when it is
    # about to yield it, so the second is built after the consumer's pause, which must not count.
    import time

    table = tb.table_from([1.0, 0.5], [[-0.25, -0.25], [-0.125, 0.25], [-0.125, 0.25], [0.0, 0.0]])
    seg = np.arange(4)[None]
    results = []
    for index, e in sedc.iter_explain([tb.image(0, 4)] * 2, tb.TableModel([table]), seg, mode=tb.fill, window=2,
                                      batch_size=8):
        results.append(e)
        time.sleep(0.6)
    assert [e.n_evaluations for e in results] == [10, 10]
    assert all(e.elapsed < 0.5 for e in results), [e.elapsed for e in results]


def test_failing_loader_is_reported_for_its_image_only():
    imgs = images()
    items: list = [functools.partial(load_array, image) for image in imgs]
    items[2] = functools.partial(fail_loading, "broken.png")
    results = explain_many(items, TinyNet(), grid(), mode="mean", on_error="return", window=3)
    assert isinstance(results[2], ImageError)
    assert results[2].index == 2
    assert "OSError" in results[2].message and "broken.png" in results[2].message
    for i in (0, 1, 3):
        assert_same(results[i], alone(imgs[i], mode="mean"))


def test_failing_loader_raises_by_default():
    items = [tiny_image(0), functools.partial(fail_loading, "broken.png"), tiny_image(1)]
    with pytest.raises(ImageError, match="image 1: OSError: .*broken.png") as caught:
        explain_many(items, TinyNet(), grid(), mode="mean")
    assert isinstance(caught.value.__cause__, OSError) and caught.value.index == 1


def test_on_error_is_validated():
    with pytest.raises(ValueError, match="on_error"):
        explain_many(images(1), TinyNet(), grid(), on_error="ignore")


@pytest.mark.parametrize("model_class", [FailOnSentinel, FailOnSentinelBatch],
                         ids=["fails-on-original", "fails-in-shared-batch"])
def test_model_error_fails_that_image_only(model_class):
    imgs = images()
    imgs[1] = tiny_image(9, sentinel=True)
    results = explain_many(imgs, model_class(), grid(), mode="mean", on_error="return", window=4, batch_size=64)
    assert isinstance(results[1], ImageError)
    assert "ValueError: sentinel" in results[1].message
    for i in (0, 2, 3):
        assert_same(results[i], alone(imgs[i], mode="mean"))
    with pytest.raises(ImageError, match="ValueError: sentinel") as caught:
        explain_many(imgs, model_class(), grid(), mode="mean", window=4, batch_size=64)
    assert isinstance(caught.value.__cause__, ValueError)


def test_max_evals_holds_per_image():
    imgs = images()
    results = explain_many(imgs, TinyNet(), grid(), mode="mean", max_evals=15, window=4)
    for image, got in zip(imgs, results):
        assert got.n_evaluations <= 15
        assert_same(got, alone(image, mode="mean", max_evals=15))
    assert {r.stop_reason for r in results} == {"found", "max_evals"}


def test_two_worker_processes_equal_in_process():
    imgs = images(6)
    loaders = [functools.partial(load_array, image) for image in imgs]
    in_process = explain_many(loaders, TinyNet(), grid(), mode="mean")
    workers = explain_many(loaders, TinyNet(), grid(), mode="mean", devices=["cpu", "cpu"])
    for got, want in zip(workers, in_process):
        assert_same(got, want)


def test_worker_that_dies_loses_only_its_image():
    imgs = images()
    imgs[1] = tiny_image(9, sentinel=True)
    results = explain_many(imgs, ExitOnSentinel(), grid(), mode="mean", devices=["cpu"], on_error="return")
    assert isinstance(results[1], ImageError)
    assert results[1].kind == "worker-died"
    assert re.search(r"worker process on cpu died (twice|3 times) on this image, the last time with it "
                     r"alone \(exit code 1\)", results[1].message)
    for i in (0, 2, 3):
        assert_same(results[i], alone(imgs[i], mode="mean"))


@pytest.mark.slow
def test_real_model_on_photos(onnx_model, photos):
    """The four demo photos (quickshift segments, the ``photos`` fixture) with EfficientNet-Lite0,
    on ONNX Runtime: explain_many's shared batches against explain, the same runtime for both
    (the torch answers are tested against the oracle in test_equivalence)."""
    images_, segs = zip(*(photos[name] for name in DEMO_PHOTOS))
    results = explain_many(list(images_), onnx_model, list(segs), mode="mean")
    for image, seg, got in zip(images_, segs, results):
        assert_same(got, sedc.explain(image, onnx_model, seg, mode="mean"))


def test_unpicklable_loader_is_reported_not_hung():
    imgs = images(3)
    items = [imgs[0], lambda: imgs[1], imgs[2]]  # a lambda cannot reach a worker process
    results = explain_many(items, TinyNet(), grid(), mode="mean", devices=["cpu"], on_error="return")
    assert isinstance(results[1], ImageError) and "functools.partial" in results[1].message
    for i in (0, 2):
        assert_same(results[i], alone(imgs[i], mode="mean"))


def test_classifier_the_worker_cannot_unpickle_stops_the_run():
    class Local(TinyNet):  # not importable by name in the worker process
        pass

    with pytest.raises((RuntimeError, TypeError), match="Local"):
        explain_many(images(2), Local(), grid(), mode="mean", devices=["cpu"], on_error="return")
