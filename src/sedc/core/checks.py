"""Checks after the search: is a counterfactual an artifact of the batch, the fill, the search or
the model?

A driver calls :func:`run_checks` once for the jobs that finished in the same round (one image in
:func:`sedc.explain`, several in :class:`sedc.scale.runner.Runner`), so their check evaluations
share model batches like the search's; :func:`attach` then puts each job's
:class:`~sedc.core.result.CheckResults` on its :class:`~sedc.core.result.Explanation`. Only found
counterfactuals are checked. The checks (``ExplainOptions.checks`` and ``check_models``):

- ``verify`` (1 evaluation): the perturbed image alone, in a batch of one, without autocast;
  verified when the model still gives the reported ``new_class`` and it is still a counterfactual.
- ``fills`` (at most 4): the removed set under each other fill of :data:`CHECK_FILLS` (``mean``,
  ``blur``, ``random``, and ``harmonic``, the inpainting computed on the device).
- ``minimal`` (at most k): each single-segment drop of the answer. With ``prune`` the answer is
  irreducible by construction (nothing is evaluated). For the exact search (and ``beam``, built on
  it) a drop the search already evaluated is known not to be a counterfactual: every set it
  evaluated before the answer's step came from a step that ended without one, and the answer's
  step holds only sets of the answer's size, so a set one smaller was claimed in such a step.
- second models (``check_models``, 2 evaluations each): the unperturbed and the perturbed image,
  resized to the model's own input size when it was loaded with one and differs;
  ``transfers`` when it leaves its own original class (SEDC) or predicts the target (SEDC-T).

Check evaluations are counted in ``n_check_evaluations``; the search's answer, ``n_evaluations``
and ``elapsed`` do not change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..base.options import CHECK_FILLS, ExplainOptions
from ..base.outputs import eval_mode
from ..base.validate import module_device
from .engine import Job
from .evaluation import Evaluator, as_scores
from .perturbation import Composer, make_fill
from .result import CheckResults, Explanation, FillCheck, MinimalCheck, ModelCheck, VerifyCheck
from .search import Search


@dataclass
class Checked:
    """One job's check results and the model evaluations they took."""

    results: CheckResults = field(default_factory=CheckResults)
    n_evaluations: int = 0


@dataclass
class SecondModel:
    """A second classifier, ready to score: where it runs and the geometry of its own input."""

    name: str
    module: Callable[[torch.Tensor], Any]
    device: torch.device
    geometry: Any = None  # sedc.models.Preprocessing of a loaded model, else None

    def scores(self, images: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted classes and their scores for (1, C, H, W) images, in one call, no autocast."""
        batch = torch.cat([self.resized(image) for image in images]).to(self.device)
        with eval_mode(self.module, stacklevel=4), torch.inference_mode():
            return _top(as_scores(self.module(batch), batch.shape[0]).float())

    def resized(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` as this model takes it: through its own resize and crop when its input size
        differs (the image already is the first model's input), else as is."""
        size = None if self.geometry is None else self.geometry.input_size
        if size is None or tuple(size) == tuple(image.shape[2:]):
            return image.float()
        prepared = self.geometry.prepare(image[0].float().cpu().clamp(0, 1))
        return torch.from_numpy(np.ascontiguousarray(prepared.transpose(2, 0, 1)))[None]


class Checker:
    """The checks of a run (``options.checks``, ``options.check_models``), with the second models
    resolved once, on first use, on ``device``."""

    def __init__(self, options: ExplainOptions, device: torch.device) -> None:
        self.checks = options.checks
        self.entries = options.check_models
        self.device = device
        self._models: list[SecondModel] | None = None

    def models(self) -> list[SecondModel]:
        """The second models: a spec is loaded here (on the driver's device), once."""
        if self._models is None:
            self._models = [second_model(entry, self.device) for entry in self.entries]
        return self._models


def second_model(entry: Any, device: torch.device) -> SecondModel:
    """A :class:`SecondModel` from a module or callable (used where it is), a loaded model
    (``.module``, ``.geometry``) or a spec with ``.load(device)`` (:class:`sedc.models.ModelSpec`)."""
    if not isinstance(entry, torch.nn.Module) and hasattr(entry, "module"):
        loaded = entry
    elif not isinstance(entry, torch.nn.Module) and callable(getattr(entry, "load", None)):
        loaded = entry.load(device)
    else:
        own = module_device(entry)
        return SecondModel(_name(entry), entry, own or device)
    own = module_device(loaded.module)
    return SecondModel(str(loaded.name), loaded.module, own or device, loaded.geometry)


def _name(model: Any) -> str:
    return getattr(model, "__name__", None) or type(model).__name__


class _Plan:
    """One finished job's checks: its answer, the probes to evaluate and what they found."""

    def __init__(self, job: Job) -> None:
        self.job = job
        best = job.pruner.best if job.pruner is not None else job.search.best
        self.best = best
        self.n = 0
        self.verify: VerifyCheck | None = None
        self.fills: list[FillCheck] | None = None
        self.minimal: MinimalCheck | None = None
        self.minimal_open = False  # single-segment drops being evaluated
        self.droppable: list[int] = []
        self.models: list[ModelCheck] | None = None
        self._perturbed: torch.Tensor | None = None

    @property
    def perturbed(self) -> torch.Tensor:
        """The counterfactual's perturbed image, (1, C, H, W) on the device."""
        if self._perturbed is None:
            self._perturbed = self.job.prepared.composer.compose([self.best.bits])
        return self._perturbed

    def is_counterfactual(self, predicted: int) -> bool:
        return self.job.search.is_counterfactual(predicted)

    def checked(self) -> Checked:
        """What this job's checks found."""
        minimal = self.minimal
        if minimal is None and self.minimal_open:
            minimal = MinimalCheck(not self.droppable, tuple(sorted(self.droppable)))
        results = CheckResults(self.verify, None if self.fills is None else tuple(self.fills), minimal,
                               None if self.models is None else tuple(self.models))
        return Checked(results, self.n)


@dataclass
class _Probe:
    """One check evaluation: how to make its image, and what to do with its class and score."""

    plan: _Plan
    image: Callable[[], torch.Tensor]
    done: Callable[[int, float], None]


def run_checks(jobs: Sequence[Job], evaluator: Evaluator, checker: Checker) -> list[Checked]:
    """Run the checks of finished ``jobs``, sharing model batches; one :class:`Checked` per job.

    Parameters
    ----------
    jobs : sequence of Job
        Finished jobs (``job.done``), typically those of one driver round.
    evaluator : Evaluator
        The search's evaluator: ``fills`` and ``minimal`` run through it (its batch size, its
        autocast), ``verify`` calls its classifier alone, without autocast.
    checker : Checker
        Which checks, and the second models.

    Returns
    -------
    list of Checked
        In the order of ``jobs``; empty results for jobs without a counterfactual.
    """
    plans = [_Plan(job) for job in jobs]
    found = [plan for plan in plans if plan.best is not None]
    if found and "verify" in checker.checks:
        for plan in found:
            _verify(plan, evaluator)
    probes: list[_Probe] = []
    for plan in found:
        if "fills" in checker.checks:
            probes += _fill_probes(plan)
        if "minimal" in checker.checks:
            probes += _minimal_probes(plan)
    _evaluate(probes, evaluator)
    if found and checker.entries:
        for model in checker.models():
            _model_check(found, model, max(1, evaluator.sizer.size))
    return [plan.checked() for plan in plans]


def attach(explanation: Explanation, checked: Checked) -> Explanation:
    """``explanation`` with the check results of its job."""
    return dataclasses.replace(explanation, checks=checked.results, n_check_evaluations=checked.n_evaluations)


def _verify(plan: _Plan, evaluator: Evaluator) -> None:
    """The perturbed image alone: a batch of one, without autocast (1 evaluation)."""
    with torch.inference_mode():
        scores = as_scores(evaluator.classifier(plan.perturbed), 1).float()
    predicted, top = _top(scores)
    cls = int(predicted[0])
    plan.verify = VerifyCheck(cls == plan.best.predicted and plan.is_counterfactual(cls), cls, float(top[0]))
    plan.n += 1


def _fill_probes(plan: _Plan) -> list[_Probe]:
    """The removed set under each other fill of :data:`CHECK_FILLS` (at most 4 evaluations)."""
    job, prepared = plan.job, plan.job.prepared
    plan.fills = []
    segmentation = torch.from_numpy(prepared.segmentation).to(prepared.image.device)
    probes = []
    for name in (fill for fill in CHECK_FILLS if fill != prepared.mode):
        fill = make_fill(prepared.image, segmentation, name, seed=job.options.seed)
        composer = Composer(prepared.image, fill, prepared.composer.index, prepared.composer.n_segments,
                            channels_last=prepared.composer.channels_last)

        def done(cls: int, _: float, name: str = name) -> None:
            plan.fills.append(FillCheck(name, plan.is_counterfactual(cls), cls))

        probes.append(_Probe(plan, lambda composer=composer: composer.compose([plan.best.bits]), done))
    return probes


def _minimal_probes(plan: _Plan) -> list[_Probe]:
    """Each single-segment drop of the answer not known already (at most k evaluations)."""
    job, bits = plan.job, plan.best.bits
    if job.pruner is not None and not job.pruner.stopped:
        plan.minimal = MinimalCheck(True)  # pruned to the end: irreducible by construction
        return []
    known = job.pruner is None and isinstance(job.search, Search)  # see the module docstring
    plan.minimal_open = True
    probes = []
    for position in range(job.prepared.composer.n_segments):
        subset = bits ^ (1 << position)
        if not bits & (1 << position) or subset == 0 or (known and job.search.claimed(subset)):
            continue
        label = int(job.prepared.segment_ids[position])

        def done(cls: int, _: float, label: int = label) -> None:
            if plan.is_counterfactual(cls):
                plan.droppable.append(label)

        probes.append(_Probe(plan, lambda subset=subset: job.prepared.composer.compose([subset]), done))
    return probes


def _evaluate(probes: list[_Probe], evaluator: Evaluator) -> None:
    """Score ``probes`` in shared batches of the evaluator's current size."""
    size = max(1, evaluator.sizer.size)
    for start in range(0, len(probes), size):
        chunk = probes[start:start + size]
        predicted, top = _top(evaluator.forward(torch.cat([probe.image() for probe in chunk])))
        for probe, cls, score in zip(chunk, predicted, top):
            probe.done(int(cls), float(score))
            probe.plan.n += 1


def _model_check(plans: list[_Plan], model: SecondModel, size: int) -> None:
    """Each plan's unperturbed and perturbed image through ``model`` (2 evaluations each)."""
    per_call = max(1, size // 2)
    for start in range(0, len(plans), per_call):
        chunk = plans[start:start + per_call]
        images = [image for plan in chunk for image in (plan.job.prepared.image, plan.perturbed)]
        predicted, _ = model.scores(images)
        for k, plan in enumerate(chunk):
            before, after = int(predicted[2 * k]), int(predicted[2 * k + 1])
            target = plan.job.target
            transfers = after != before if target is None else after == target
            plan.models = (plan.models or []) + [ModelCheck(model.name, before, after, transfers)]
            plan.n += 2


def _top(scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the predicted class (first maximum) and its score, copied to the host together."""
    predicted = scores.argmax(dim=1)
    top = scores[torch.arange(scores.shape[0], device=scores.device), predicted]
    host = torch.stack([predicted.to(scores.dtype), top]).cpu().numpy().astype(np.float64)
    return host[0].astype(np.int64), host[1]
