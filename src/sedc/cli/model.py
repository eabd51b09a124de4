"""``--model`` and friends: which classifier ``sedc explain`` runs, loaded once, with its notes."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from ..base.errors import UsageError


def check_model_options(args: argparse.Namespace) -> None:
    """--input-size, --normalize and --class-names against what ``--model`` brings itself."""
    from ..models import is_library_spec

    flags = (("--input-size", args.input_size), ("--normalize", args.normalize), ("--class-names", args.class_names))
    if is_builtin(args.model):
        given = [flag for flag, value in flags if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to your own models (see --model); the "
                             f"built-in {args.model or 'model'} sets them")
    elif is_library_spec(args.model):
        given = [flag for flag, value in flags[:2] if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} do not apply to {args.model.strip()}: it brings its "
                             "own resize, crop and normalisation")


def is_builtin(spec: str | None) -> bool:
    """Whether ``--model`` names a built-in model (None: the default one)."""
    from ..models import ModelSpec

    return ModelSpec(spec).is_builtin


def model_spec(args: argparse.Namespace) -> Any:
    """The :class:`sedc.models.ModelSpec` of ``--model`` and its options: loaded here, and the
    classifier factory of worker processes and Ray actors."""
    from ..models import ModelSpec

    return ModelSpec(args.model, args.input_size, args.normalize, args.class_names)


def load_model(args: argparse.Namespace) -> Any:
    """Load the built-in or user model named by ``--model`` on ``--device``.

    Its warnings (a factory's model in training mode) are printed as one line each, and a note
    says when a model file or factory is normalised with the default ImageNet statistics.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = _load(model_spec(args), args.device)
    for warning in caught:
        print(f"sedc explain: warning: {one_line(str(warning.message))}", file=sys.stderr)
    if default_normalization(args):
        print(f"sedc explain: note: {args.model} carries no preprocessing: images are resized to "
              f"{size_text(loaded.input_size)} and normalised with the ImageNet mean and std "
              "(set --input-size and --normalize to match its training)", file=sys.stderr)
    return loaded


def load_check_models(args: argparse.Namespace) -> list[tuple[Any, Any]]:
    """The second models of ``--check model:SPEC``: ``(ModelSpec, LoadedModel)`` pairs, each loaded
    once here (a spec that cannot be loaded is a usage error, before any search), warnings said."""
    from ..base.options import MODEL_CHECK
    from ..models import ModelSpec

    pairs = []
    for entry in (c for c in args.checks if c.startswith(MODEL_CHECK)):
        spec = ModelSpec(entry[len(MODEL_CHECK):])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pairs.append((spec, _load(spec, args.device)))
        for warning in caught:
            print(f"sedc explain: warning: {one_line(str(warning.message))}", file=sys.stderr)
    return pairs


def _load(spec: Any, device: Any) -> Any:
    """``spec.load(device)``, every failure as a one-line UsageError."""
    try:
        return spec.load(device)
    except (ValueError, TypeError) as err:
        raise UsageError(f"{one_line(str(err))}{builtin_hint(spec.spec)}") from None
    except Exception as err:  # user factories can raise anything
        raise UsageError(f"cannot load model {spec.spec!r}: {type(err).__name__}: "
                         f"{one_line(str(err))}") from None


def one_line(text: str) -> str:
    """The first line of a message (library errors can run over many)."""
    lines = text.strip().splitlines()
    return lines[0] if lines else text


def default_normalization(args: argparse.Namespace) -> bool:
    """Whether a model file or factory runs with the default ``--normalize imagenet``."""
    from ..models import is_library_spec

    return not is_builtin(args.model) and not is_library_spec(args.model) and args.normalize is None


def size_text(size: Any) -> str:
    """``224x224`` for 224, ``224x320`` for (224, 320)."""
    if size is None:
        return "their own aspect ratio"
    height, width = (size, size) if isinstance(size, int) else size
    return f"{height}x{width}"


def builtin_hint(spec: str | None) -> str:
    """Name the built-in models when ``spec`` is neither a built-in, a file nor a factory spec."""
    from .. import models

    if spec is None or ":" in spec or Path(spec).exists():
        return ""
    return f" (built-in models: {', '.join(models.available())})"
