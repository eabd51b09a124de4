"""Explanations in Jupyter: ``_repr_png_`` (cached), ``_repr_html_`` (the card), ``sedc.Gallery``,
class names carried from a :class:`sedc.models.LoadedModel`, and no pyplot anywhere."""

from __future__ import annotations

import base64
import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sedc
from sedc.base.validate import split_loaded_model
from sedc.display import figure
from sedc.display.notebook import Gallery, card_html, checks_of
from sedc.models import LoadedModel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["bright", "dark <b>"]  # a name with markup: the card must escape it
SIDE = 24


class Brightness(torch.nn.Module):
    """Two classes: ``bright`` (the mean pixel, as a logit) against ``dark`` (a constant 0.4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3))
        return torch.stack([mean, torch.full_like(mean, 0.4)], dim=1)


def photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.5 + 0.2 * rng.random((SIDE, SIDE, 3))).astype(np.float32)


def grid() -> np.ndarray:
    rows, cols = np.indices((SIDE, SIDE)) // 8
    return rows * 3 + cols


def loaded() -> LoadedModel:
    return LoadedModel(module=Brightness().eval(), class_names=list(NAMES), input_size=SIDE, name="brightness")


@pytest.fixture()
def explanation() -> sedc.Explanation:
    """Removing regions (filled with black) darkens the image until the class flips."""
    return sedc.explain(photo(), loaded(), grid(), mode=np.zeros((SIDE, SIDE, 3), np.float32))


def test_a_loaded_model_runs_its_module_and_names_the_classes(explanation):
    assert explanation.found and explanation.class_names == NAMES
    assert explanation.original_class == 0 and explanation.new_class == 1
    plain = sedc.explain(photo(), Brightness().eval(), grid(), mode=np.zeros((SIDE, SIDE, 3), np.float32))
    assert plain.class_names is None
    assert plain.removed == explanation.removed and plain.n_evaluations == explanation.n_evaluations
    assert "class_names" not in explanation.to_dict() and "class_names" not in repr(explanation)
    assert not next(f for f in dataclasses.fields(explanation) if f.name == "class_names").compare


def test_explain_many_and_the_seed_api_take_a_loaded_model():
    results = sedc.explain_many([photo(), photo()[::-1].copy()], loaded(), grid(), mode="mean",
                                max_evals=20)
    assert [r.class_names for r in results] == [NAMES, NAMES]
    as_tuple = sedc.sedc_pytorch(photo(), loaded(), grid(), mode="mean")
    assert as_tuple[4] == 0


def test_only_a_non_callable_with_module_and_class_names_is_a_loaded_model():
    module = Brightness()
    assert split_loaded_model(module) == (module, None)
    module.module, module.class_names = Brightness(), ["x"]  # callable (like DataParallel): a module
    assert split_loaded_model(module) == (module, None)
    model = loaded()
    assert split_loaded_model(model) == (model.module, NAMES)
    with pytest.raises(sedc.InputTypeError, match="classifier must be"):
        sedc.explain(photo(), object(), grid())


def test_plot_uses_the_attached_names_unless_others_are_passed(explanation):
    assert figure.plot(explanation).axes[0].get_title() == "Original: bright 0.60"
    assert figure.plot(explanation, ["light", "night"]).axes[0].get_title() == "Original: light 0.60"
    assert "'bright'" in figure.summary(explanation)
    assert explanation.plot().axes[2].get_title().startswith("Counterfactual: dark <b>")


def test_repr_png_is_the_plot_figure_rendered_once(monkeypatch, explanation):
    calls = []
    render = figure.figure_png
    monkeypatch.setattr(figure, "figure_png", lambda *a, **k: calls.append(a) or render(*a, **k))
    png = explanation._repr_png_()
    assert png.startswith(PNG_MAGIC) and png == render(explanation, NAMES)
    assert explanation._repr_png_() is png and explanation._repr_html_()
    assert len(calls) == 1
    explanation.class_names = ["other", "names"]  # new names, new figure
    assert explanation._repr_png_() != png and len(calls) == 2


def test_the_cached_figure_is_not_a_field_nor_pickled(explanation):
    explanation._repr_png_()
    assert "_png_cache" in vars(explanation)
    assert "_png_cache" not in {f.name for f in dataclasses.fields(explanation)}
    assert "_png_cache" not in explanation.to_dict()
    copy = pickle.loads(pickle.dumps(explanation))
    assert "_png_cache" not in vars(copy) and copy.class_names == NAMES
    assert copy._repr_png_() == explanation._repr_png_()


def test_the_card_shows_the_figure_the_classes_and_the_cost(explanation):
    card = explanation._repr_html_()
    png = base64.b64decode(card.split("data:image/png;base64,")[1].split("'")[0])
    assert png == explanation._repr_png_()
    k, n = len(explanation.removed), explanation.n_segments
    assert "<b>bright</b> (0.60) → <b>dark &lt;b&gt;</b>" in card and "dark <b>" not in card
    assert f"{k} of {n} segments" in card
    assert f"{explanation.n_evaluations} in " in card and ">found<" in card
    found = checks_of(explanation)  # the default checks: verify, and the area (always known)
    assert set(found) == {"area", "verified", "verified_class", "verified_score", "n_check_evaluations"}
    assert found["verified"] is True and "color:#666'>verified</td><td>True</td>" in card


def test_the_card_lists_results_beyond_the_schema_fields(explanation):
    class Checked(sedc.Explanation):
        def to_dict(self):
            return {**super().to_dict(), "checks": {"stable": True, "margin": 0.25}}

    checked = Checked(**{f.name: getattr(explanation, f.name) for f in dataclasses.fields(explanation)})
    assert checks_of(checked)["checks"] == {"stable": True, "margin": 0.25}
    assert "stable: True<br>margin: 0.25" in card_html(checked)


def test_a_result_without_a_counterfactual_says_why():
    e = sedc.explain(photo(), loaded(), grid(), mode="mean", max_evals=3)
    card = e._repr_html_()
    assert "→ no counterfactual" in card and "evaluation limit reached" in card


def test_a_gallery_shows_each_explanation_and_each_failed_image(explanation):
    error = sedc.ImageError(1, "InputError: float image values must lie in [0, 1]")
    gallery = sedc.Gallery([explanation, error, explanation], columns=2, titles=["a", "b <i>", "c"])
    page = gallery._repr_html_()
    assert "grid-template-columns:repeat(2," in page
    assert page.count("class='sedc-explanation'") == 2 and page.count("failed</b>") == 1
    assert "image 1: InputError: float image values must lie in [0, 1]" in page
    assert "b &lt;i&gt;" in page and "bright" in page
    assert repr(gallery) == "Gallery(3 explanations, 1 failed, columns=2)" and len(gallery) == 3
    renamed = Gallery([explanation], class_names=["light", "night"])._repr_html_()
    assert "<b>light</b>" in renamed


def test_a_gallery_refuses_what_it_cannot_show(explanation):
    with pytest.raises(sedc.InputTypeError, match="sedc.Explanation"):
        Gallery([explanation, "not a result"])
    with pytest.raises(sedc.InputError, match="columns"):
        Gallery([explanation], columns=0)
    with pytest.raises(sedc.InputError, match="titles"):
        Gallery([explanation], titles=["a", "b"])


def test_rendering_uses_no_pyplot():
    """No window and no global figure registry: the figures are drawn on their own Agg canvas."""
    code = "\n".join([
        "import sys, numpy as np, sedc",
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "from test_inline_display import Brightness, grid, loaded, photo",
        "e = sedc.explain(photo(), loaded(), grid(), mode='mean', max_evals=5)",
        "e._repr_png_(); e._repr_html_(); e.plot()",
        "sedc.Gallery([e, sedc.ImageError(1, 'x')])._repr_html_()",
        "print('matplotlib.pyplot' in sys.modules)",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
