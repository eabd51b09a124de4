"""Training mode on every path: evaluated as in eval mode, one warning, the model handed back untouched.

Paths: explain, explain_many in one process, worker processes (a module and a factory), Ray,
the seed API, the reference's adapter, Normalized, and the command line (tests/test_model_specs.py).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from helpers.images import grid, tiny_image
from helpers.models import TrainModeNet, train_mode_net

import sedc
from sedc.base.outputs import TRAINING_MODE_WARNING, eval_mode, in_training_mode
from sedc.core.seed import sedc_pytorch
from sedc.models import Normalized
from sedc.reference import TorchPredictor
from sedc.reference import sedc as sedc_reference
from sedc.scale import explain_many

OPTIONS = dict(mode="mean", batch_size=4)


def snapshot(model: torch.nn.Module) -> tuple[dict, list[bool]]:
    """Every buffer and parameter (cloned) and every submodule's training flag."""
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()])


def assert_untouched(model: torch.nn.Module, before: tuple[dict, list[bool]]) -> None:
    state, flags = before
    assert [m.training for m in model.modules()] == flags
    now = model.state_dict()
    assert set(now) == set(state)
    for key, value in state.items():
        assert torch.equal(now[key], value), key


def key(e: sedc.Explanation) -> tuple:
    return e.removed, e.new_class, e.original_class, e.n_evaluations, e.stop_reason


def training_warnings(record: list) -> list:
    return [w for w in record if issubclass(w.category, UserWarning)
            and str(w.message) == TRAINING_MODE_WARNING]


@pytest.fixture()
def model() -> TrainModeNet:
    net = TrainModeNet()
    net.drop.eval()  # mixed flags must come back mixed
    return net


def reference_answer(net: torch.nn.Module, image, **options) -> sedc.Explanation:
    ref = copy.deepcopy(net).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an eval-mode model never warns
        return sedc.explain(image, ref, grid(), **{**OPTIONS, **options})


def test_the_model_really_differs_between_modes(model):
    x = torch.rand(4, 3, 12, 12)
    with torch.no_grad():
        trained = model(x)
        evaluated = copy.deepcopy(model).eval()(x)
    assert not torch.allclose(trained, evaluated)


def test_explain(model):
    image, before = tiny_image(0), snapshot(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = sedc.explain(image, model, grid(), **OPTIONS)
    assert len(training_warnings(record)) == 1
    assert training_warnings(record)[0].filename == __file__  # points at the caller
    assert key(got) == key(reference_answer(model, image))
    assert_untouched(model, before)


def test_bound_method_and_normalized(model):
    image, before = tiny_image(1), snapshot(model)
    for classifier in (model.forward, Normalized(model, (0.5,) * 3, (0.5,) * 3, softmax=False)):
        with pytest.warns(UserWarning, match="training mode"):
            got = sedc.explain(image, classifier, grid(), **OPTIONS)
        want = reference_answer(Normalized(model, (0.5,) * 3, (0.5,) * 3, softmax=False)
                                if isinstance(classifier, Normalized) else model, image)
        assert key(got) == key(want)
        assert_untouched(model, before)


def test_explain_many_in_process(model):
    images, before = [tiny_image(s) for s in range(3)], snapshot(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        results = explain_many(images, model, grid(), window=2, **OPTIONS)
    assert len(training_warnings(record)) == 1
    assert [key(r) for r in results] == [key(reference_answer(model, im)) for im in images]
    assert_untouched(model, before)


def test_flags_are_restored_when_the_run_stops_early(model):
    before = snapshot(model)
    run = sedc.iter_explain([tiny_image(s) for s in range(3)], model, grid(), **OPTIONS)
    with pytest.warns(UserWarning, match="training mode"):
        next(run)
    assert not in_training_mode(model)  # still inside the run
    run.close()
    assert_untouched(model, before)


def test_worker_process_with_a_module(model):
    images, before = [tiny_image(s) for s in range(2)], snapshot(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        results = explain_many(images, model, grid(), devices=["cpu"], **OPTIONS)
    assert len(training_warnings(record)) == 1
    assert [key(r) for r in results] == [key(reference_answer(model, im)) for im in images]
    assert_untouched(model, before)


def test_worker_process_with_a_factory_relays_the_warning():
    images = [tiny_image(s) for s in range(2)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        results = explain_many(images, train_mode_net, grid(), devices=["cpu"], **OPTIONS)
    assert len(training_warnings(record)) == 1
    assert [key(r) for r in results] == [key(reference_answer(TrainModeNet(), im)) for im in images]


def test_seed_api(model):
    image, before = tiny_image(2), snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        got = sedc_pytorch(torch.from_numpy(image).permute(2, 0, 1), model, grid(), mode="mean")
    want = reference_answer(model, image, batch_size=1)
    assert (got[1], got[3], got[4]) == (want.removed, want.new_class, want.original_class)
    assert_untouched(model, before)


def test_reference_adapter(model):
    image, before = tiny_image(3), snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        predictor = TorchPredictor(model)
    got = sedc_reference(image, predictor, grid(), "mean")
    want = sedc_reference(image, TorchPredictor(copy.deepcopy(model).eval()), grid(), "mean")
    assert (got.segments_in_explanation, got.new_class) == (want.segments_in_explanation, want.new_class)
    assert_untouched(model, before)


def test_eval_mode_context_restores_after_an_error(model):
    before = snapshot(model)
    with pytest.raises(RuntimeError), pytest.warns(UserWarning):
        with eval_mode(model):
            raise RuntimeError("boom")
    assert_untouched(model, before)


def test_plain_functions_pass_through():
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with eval_mode(lambda x: calls.append(x)) as was_training:
            assert was_training is False


def export(net: torch.nn.Module) -> torch.nn.Module:
    batch = {"x": {0: torch.export.Dim("batch")}}
    return torch.export.export(net, (torch.rand(2, 3, 12, 12),), dynamic_shapes=batch).module()


def test_exported_program_in_training_mode_is_refused(model):
    program = export(model)
    with pytest.raises(ValueError, match="exported in training mode"):
        sedc.explain(tiny_image(0), program, grid(), **OPTIONS)
    evaluated = export(copy.deepcopy(model).eval())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its flags say training, but it was exported in eval mode
        got = sedc.explain(tiny_image(0), evaluated, grid(), **OPTIONS)
    assert key(got) == key(reference_answer(model, tiny_image(0)))


class ParameterFree(torch.nn.Module):
    """No parameters and no layer that depends on the mode: the same in both modes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)


def linear_only() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 5))


def dropout_only() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


@pytest.mark.parametrize("make", [ParameterFree, linear_only], ids=["parameter-free", "linear-only"])
def test_a_module_the_mode_does_not_change_is_switched_silently(make):
    model = make()
    assert model.training
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing it computes depends on the mode: no warning
        got = sedc.explain(tiny_image(0), model, grid(), **OPTIONS)
        explain_many([tiny_image(1)], model, grid(), **OPTIONS)
        TorchPredictor(model)
    assert key(got) == key(sedc.explain(tiny_image(0), copy.deepcopy(model).eval(), grid(), **OPTIONS))
    assert_untouched(model, before)


def test_a_dropout_only_module_warns():
    model, image = dropout_only(), tiny_image(0)
    before = snapshot(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sedc.explain(image, model, grid(), **OPTIONS)
    assert len(training_warnings(record)) == 1
    assert_untouched(model, before)


def test_which_layers_depend_on_the_mode():
    from sedc.base.outputs import mode_dependent

    nn = torch.nn
    depends = [nn.BatchNorm2d(3), nn.SyncBatchNorm(3), nn.InstanceNorm2d(3, track_running_stats=True),
               nn.Dropout(0.1), nn.Dropout2d(0.1), nn.AlphaDropout(0.1), nn.FeatureAlphaDropout(0.1),
               nn.RReLU(), nn.MultiheadAttention(4, 2, dropout=0.1)]
    same = [nn.BatchNorm2d(3, track_running_stats=False), nn.InstanceNorm2d(3), nn.Dropout(0.0),
            nn.LayerNorm(3), nn.GroupNorm(1, 3), nn.Linear(2, 2), nn.Conv2d(3, 3, 1), nn.ReLU(),
            nn.MultiheadAttention(4, 2)]
    assert [type(m).__name__ for m in depends if not mode_dependent(m)] == []
    assert [type(m).__name__ for m in same if mode_dependent(m)] == []
