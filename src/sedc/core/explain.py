"""``sedc.explain``: the public entry point for one image.

The options are built and checked here, once (:class:`~sedc.ExplainOptions`); the engine
(:mod:`sedc.core.engine`) trusts them.
"""

from __future__ import annotations

from typing import Any

from ..base.deprecated import renamed_argument
from ..base.options import ExplainOptions
from ..base.outputs import eval_mode
from ..base.validate import classifier_device, split_loaded_model
from .checks import Checker, attach, run_checks
from .engine import evaluate_originals, finish, make_evaluator, make_job, run_jobs, use_channels_last
from .result import Explanation


def explain(image: Any, classifier: Any, segmentation: Any = None, options: ExplainOptions | None = None,
            *, device: Any = None, **overrides: Any) -> Explanation:
    """Explain one prediction with a SEDC (or SEDC-T) counterfactual.

    Parameters
    ----------
    image : torch.Tensor, numpy.ndarray or PIL.Image.Image
        (C, H, W) or (1, C, H, W) tensor; (H, W, C) array, float in [0, 1] or uint8; or PIL image.
        The model sees exactly these pixels (wrap normalisation into the classifier).
    classifier : torch.nn.Module, callable or sedc.models.LoadedModel
        Maps a (B, C, H, W) float tensor to (B, K) scores, used as returned (no softmax is added).
        A :class:`sedc.models.LoadedModel` (what :func:`sedc.models.load` returns; recognised as
        an object that is not callable but has ``.module`` and ``.class_names``) runs its
        ``.module`` and attaches its ``.class_names`` to the result, so figures and the notebook
        display name the classes. What it returns becomes scores by :func:`sedc.models.to_scores` (a tensor, ``.logits``,
        a mapping's ``"logits"``, a tuple's first element). A module in training mode is
        evaluated in eval mode for this call and then restored exactly (with a ``UserWarning``
        when that changes what it computes).
    segmentation : array or tensor of shape (H, W), optional
        The image's segments: an integer label per pixel (any labels). ``None`` runs
        quickshift(kernel_size=4, max_dist=200, ratio=0.2), the paper's setting. (Passed as
        ``segments=``, its name before 0.2, it still works, with a ``DeprecationWarning``.)
    options : ExplainOptions, optional
        The search settings; ``**overrides`` replace single ones.
    device : str or torch.device, optional
        Where to compose candidates and run the model; defaults to the model's device.
    **overrides
        Any :class:`~sedc.ExplainOptions` field: ``mode`` (``"mean"``, ``"blur"`` (default),
        ``"random"``, ``"inpaint"``, ``"inpaint_telea"``, ``"harmonic"``, a callable
        ``(image, segmentation) -> fill`` or a fill image), ``target`` (SEDC-T toward this
        class), ``batch_size`` (``"auto"``: measured on the search's own batches and remembered
        for this classifier object, see :class:`~sedc.core.batching.BatchSizer`; or an int;
        ``Explanation.batch_size`` says what was used), ``max_time`` (seconds), ``max_evals``
        (model evaluations, the unperturbed image included), ``seed`` (of the ``random`` fill),
        ``prune`` (drop segments while the class stays changed), ``autocast`` (CUDA float16),
        ``channels_last`` (``"auto"``: on for conv models), ``max_batch`` (memory cap),
        ``checks`` (run after the search on the counterfactual: ``("verify",)`` by default;
        ``"fills"``, ``"minimal"``; ``()`` for none) and ``check_models`` (second classifiers
        or :class:`sedc.models.ModelSpec` s the counterfactual should transfer to); see
        :mod:`sedc.core.checks`. Check evaluations are counted apart (``n_check_evaluations``).
        ``search`` (``"exact"``, the default and the paper's answer; ``"fast"``; ``"beam"``) and
        ``beam_width`` (``search="beam"`` only; default 2).

    Returns
    -------
    Explanation
        The counterfactual (``found=False`` with the reason when none was found); its
        ``class_names`` are the loaded model's, or None for a plain module or callable.

    Raises
    ------
    sedc.InputError, sedc.InputTypeError
        For an image, segmentation, option or classifier output sedc cannot use; the message names
        it and what is allowed.

    Examples
    --------
    >>> import sedc
    >>> model = sedc.models.load("efficientnet-lite0")          # doctest: +SKIP
    >>> e = sedc.explain(photo, model.module, mode="blur")      # doctest: +SKIP
    >>> e.removed, model.class_names[e.new_class]               # doctest: +SKIP
    >>> e = sedc.explain(photo, model)       # the LoadedModel: e.class_names, e.plot() names them  # doctest: +SKIP
    """
    segmentation = renamed_argument(overrides, "segments", "segmentation", segmentation, stacklevel=3)
    options = ExplainOptions.build(options, **overrides)
    classifier, class_names = split_loaded_model(classifier)
    dev = classifier_device(classifier, device)
    with eval_mode(classifier):  # a model in training mode: evaluated in eval mode, then restored
        channels_last = use_channels_last(options, classifier, dev)
        evaluator = make_evaluator(classifier, dev, options, channels_last)
        job = make_job(image, segmentation, options, dev, channels_last)
        evaluate_originals([job], evaluator)
        run_jobs([job], evaluator)
        checked = run_checks([job], evaluator, Checker(options, dev))[0]
    result = attach(finish(job), checked)
    result.class_names = class_names
    return result
