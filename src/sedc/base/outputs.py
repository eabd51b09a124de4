"""The one rule for what a classifier returns, used on every path.

A classifier's output becomes a (B, K) tensor of class scores by this rule, in this order:

1. a ``torch.Tensor`` (or a numpy array) is used as it is;
2. an object with a tensor attribute ``logits`` (Hugging Face ``ImageClassifierOutput``) gives
   its ``logits``;
3. a mapping gives its ``"logits"`` entry, or its only value when it has exactly one;
4. a tuple or list gives its first element (Hugging Face ``return_dict=False``).

Anything else is refused with a TypeError that names the type and states the rule. Scores are
used as returned: no softmax is added.

The module also holds the one rule for **training mode**: a model in training mode is evaluated
in eval mode for the duration of a call and handed back with every submodule's ``training`` flag
as it was (:func:`eval_mode`; in eval mode BatchNorm neither uses nor updates batch statistics, so
no buffer changes). One ``UserWarning`` says so, issued only by :func:`warn_training_mode` and
only when the switch changes what the model computes (:func:`training_mode_matters`): the model
holds a layer whose output depends on the mode (BatchNorm or InstanceNorm keeping running
statistics, dropout with p > 0, RReLU, attention dropout, stochastic depth). A model without one
computes the same in both modes and is switched silently.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .errors import InputError, InputTypeError

RULE = ("a tensor; an object with a .logits tensor; a mapping with a 'logits' entry (or a single "
        "value); or a tuple/list whose first element is the scores")


def to_scores(output: Any) -> torch.Tensor:
    """The score tensor inside a classifier's ``output`` (see the module's rule).

    Parameters
    ----------
    output : Any
        What the classifier returned for one batch.

    Returns
    -------
    torch.Tensor
        The scores, as returned (shape not checked here).

    Raises
    ------
    TypeError
        When ``output`` holds no score tensor under the rule.
    """
    found = _unwrap(output)
    if isinstance(found, np.ndarray):
        found = torch.from_numpy(found)
    if not isinstance(found, torch.Tensor):
        raise InputTypeError(f"the classifier returned {_describe(output)}; expected {RULE}")
    return found


def _unwrap(output: Any) -> Any:
    if isinstance(output, (torch.Tensor, np.ndarray)):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, (torch.Tensor, np.ndarray)):
        return logits
    if isinstance(output, Mapping):
        if "logits" in output:
            return output["logits"]
        if len(output) == 1:
            return next(iter(output.values()))
        return None
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return None


def _describe(output: Any) -> str:
    if isinstance(output, Mapping):
        return f"a {type(output).__name__} with keys {sorted(map(str, output))[:8]}"
    if isinstance(output, (tuple, list)):
        first = type(output[0]).__name__ if output else "nothing"
        return f"a {type(output).__name__} whose first element is {first}"
    return f"a {type(output).__name__}"


# --------------------------------------------------------------------------------------------
# Training mode
# --------------------------------------------------------------------------------------------

TRAINING_MODE_WARNING = (
    "the classifier is in training mode (dropout active, BatchNorm using and updating batch "
    "statistics): sedc evaluates it in eval mode for this call and then restores it. Call "
    "model.eval() before explaining to silence this warning")


EXPORTED_IN_TRAINING = (
    "the torch.export program was exported in training mode: its dropout and BatchNorm batch "
    "statistics are part of the program and cannot be switched off; call model.eval() before "
    "torch.export.export and save it again")


def find_module(classifier: Any) -> nn.Module | None:
    """The ``nn.Module`` behind ``classifier``: itself, a bound method's owner, a partial's function.

    A plain function that closes over a module is opaque: None.
    """
    for _ in range(4):  # bound method of a partial of a module, at most a few layers
        if isinstance(classifier, nn.Module):
            return classifier
        if isinstance(classifier, functools.partial):
            classifier = classifier.func
        elif isinstance(getattr(classifier, "__self__", None), nn.Module):
            classifier = classifier.__self__
        else:
            return None
    return None


def is_exported(module: nn.Module) -> bool:
    """Whether ``module`` is a ``torch.export`` program (``ExportedProgram.module()``).

    Its dropout and BatchNorm behaviour was fixed when it was exported; its ``training`` flags
    mean nothing and its ``train()`` / ``eval()`` raise.
    """
    return isinstance(module, torch.fx.GraphModule) and hasattr(module, "range_constraints")


def exported_in_training(module: nn.Module) -> bool:
    """Whether an exported program runs BatchNorm or dropout as in training mode."""
    for node in module.graph.nodes:
        if node.op != "call_function":
            continue
        target = str(node.target)
        if target.startswith("aten.batch_norm") and len(node.args) > 5 and node.args[5] is True:
            return True
        if target.startswith(("aten.dropout", "aten.feature_dropout", "aten.alpha_dropout")) \
                and len(node.args) > 2 and node.args[2] is True:
            return True
        if target.startswith(("aten._native_batch_norm_legit_functional", "aten.native_dropout")):
            return True
    return False


def live_modules(module: nn.Module) -> list[nn.Module]:
    """``module`` and its submodules whose flags matter: exported programs' insides are skipped.

    Raises
    ------
    ValueError
        For an exported program that was exported in training mode (it cannot be switched).
    """
    found, stack = [], [module]
    while stack:
        current = stack.pop()
        if is_exported(current):
            if exported_in_training(current):
                raise InputError(EXPORTED_IN_TRAINING)
            continue
        found.append(current)
        stack.extend(reversed(list(current.children())))
    return found


def in_training_mode(classifier: Any) -> bool:
    """Whether any submodule of the module behind ``classifier`` is in training mode."""
    module = find_module(classifier)
    return module is not None and any(m.training for m in live_modules(module))


def mode_dependent(layer: nn.Module) -> bool:
    """Whether ``layer``'s own output depends on its ``training`` flag.

    BatchNorm, SyncBatchNorm and InstanceNorm that keep running statistics (without them both
    modes use the batch's); dropout of every kind with ``p > 0``; RReLU with a slope range;
    ``MultiheadAttention`` with attention dropout; stochastic depth (timm's and Hugging Face's
    ``DropPath``, torchvision's ``StochasticDepth``) with a positive rate.
    """
    if isinstance(layer, nn.modules.batchnorm._NormBase):
        return bool(layer.track_running_stats)
    if isinstance(layer, nn.modules.dropout._DropoutNd):
        return layer.p > 0
    if isinstance(layer, nn.RReLU):
        return layer.lower != layer.upper
    if isinstance(layer, nn.MultiheadAttention):
        return layer.dropout > 0
    if type(layer).__name__.endswith(("DropPath", "StochasticDepth")):
        rate = getattr(layer, "drop_prob", getattr(layer, "p", 1.0))
        return not isinstance(rate, (int, float)) or rate > 0
    return False


def training_mode_matters(classifier: Any) -> bool:
    """Whether evaluating ``classifier`` in eval mode changes what it computes.

    True when a layer whose output depends on the mode (:func:`mode_dependent`) is in training
    mode. A module without such a layer (only convolutions and linear layers, or no parameters
    at all) computes the same in both modes.
    """
    module = find_module(classifier)
    return module is not None and any(m.training and mode_dependent(m) for m in live_modules(module))


def warn_training_mode(classifier: Any, stacklevel: int = 1) -> bool:
    """Warn, once, when ``classifier`` is in a training mode that matters; say whether it warned.

    The one place the training-mode :class:`UserWarning` comes from: called by every entry point
    that receives a user's module (:func:`sedc.explain`, the many-image backends, the reference's
    adapter). ``stacklevel=1`` attributes it to the caller of this function, 2 to that caller's
    caller.
    """
    if not training_mode_matters(classifier):
        return False
    warnings.warn(TRAINING_MODE_WARNING, UserWarning, stacklevel=stacklevel + 1)
    return True


@contextlib.contextmanager
def eval_mode(classifier: Any, *, warn: bool = True, stacklevel: int = 2) -> Iterator[bool]:
    """Evaluate ``classifier`` in eval mode for the duration of the block.

    When any submodule is in training mode, the whole module is switched to eval mode (its
    ``train(False)``, so custom overrides apply), :func:`warn_training_mode` warns when that
    changes what the model computes (unless ``warn=False``), and on exit every submodule's
    ``training`` flag is set back exactly as it was. In eval mode BatchNorm reads its running statistics without updating them and dropout
    is off, so no buffer changes. Plain callables pass through untouched.

    Parameters
    ----------
    classifier : torch.nn.Module or callable
    warn : bool, default True
    stacklevel : int
        Where the warning points: 1 at the code holding the ``with`` statement, 2 (default) at
        its caller.

    Yields
    ------
    bool
        Whether the model was in training mode.
    """
    module = find_module(classifier)
    modules = live_modules(module) if module is not None else []
    flags = [m.training for m in modules]
    if not any(flags):
        yield False
        return
    if warn:
        warn_training_mode(module, stacklevel + 2)  # + this generator and contextlib's __enter__
    try:
        _set_eval(module, modules)
        yield True
    finally:
        for sub, flag in zip(modules, flags):
            sub.training = flag


def _set_eval(module: nn.Module, modules: list[nn.Module]) -> None:
    """``train(False)`` on every live module (custom overrides apply), never inside an export."""
    for sub in modules:
        sub.training = False
    for sub in modules:
        if type(sub).train is not nn.Module.train:
            try:
                sub.train(False)
            except NotImplementedError:  # it reached an exported program: flags are set above
                pass
