"""The model-zoo libraries (torchvision, timm) for the tests that need them."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(name: str) -> ModuleType:
    """Import ``name``: a skip where it cannot be imported, a failure under SEDC_REQUIRE_ZOO=1.

    Any exception counts as "cannot be imported": a torchvision wheel built for another torch
    raises RuntimeError (``operator torchvision::nms does not exist``).
    """
    try:
        return importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - see above
        reason = f"{name} cannot be imported here ({type(err).__name__}: {err})"
    if os.environ.get("SEDC_REQUIRE_ZOO") == "1":
        pytest.fail(f"{reason}; SEDC_REQUIRE_ZOO=1 (make test-zoo) requires it", pytrace=False)
    pytest.skip(reason)
