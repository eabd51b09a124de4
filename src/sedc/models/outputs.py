"""The one rule for what a classifier returns, used on every path.

A classifier's output becomes a (B, K) tensor of class scores by this rule, in this order:

1. a ``torch.Tensor`` (or a numpy array) is used as it is;
2. an object with a tensor attribute ``logits`` (Hugging Face ``ImageClassifierOutput``) gives
   its ``logits``;
3. a mapping gives its ``"logits"`` entry, or its only value when it has exactly one;
4. a tuple or list gives its first element (Hugging Face ``return_dict=False``).

Anything else is refused with a TypeError that names the type and states the rule. Scores are
used as returned: no softmax is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

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
        raise TypeError(f"the classifier returned {_describe(output)}; expected {RULE}")
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
