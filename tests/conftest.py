"""Shared fixtures: the export cache, the real model, the demo photos and the oracle's answers on
them, and the 32 x 32 coffee photo with its grids. Helpers (models, images, score tables) live in
the ``helpers`` package (see ``tests/helpers/__init__.py``).

The hypothesis profiles of the property tests are registered here, once: ``dev`` (40 random
examples), ``ci`` (the same, derandomized: chosen when ``CI`` is set) and ``mutation`` (as ci,
without shrinking: a mutant needs one failing example, not the smallest). ``HYPOTHESIS_PROFILE``
picks one.
"""

from __future__ import annotations

import os

# One intra-op thread for torch (and so for ONNX Runtime, which follows torch's count), in this
# process and every subprocess a test starts, set before torch is imported; a developer's own
# OMP_NUM_THREADS wins. On the 2-core CI machines, two OpenMP threads wait on each other at every
# operator: with another job on the machine, EfficientNet-Lite0 ran about 10x slower per image
# with two threads than the model alone measures (load average 4-6); with one thread it only
# shares the core. On an idle AVX2 machine one thread is also faster at batch 1 (30 against 44
# ms per image). The library's own default (torch's) is unchanged.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from helpers.images import coffee, grid_segments  # noqa: E402
from hypothesis import HealthCheck, Phase, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=40, **_COMMON)
settings.register_profile("ci", max_examples=40, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("mutation", max_examples=40, derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session", autouse=True)
def sedc_cache(tmp_path_factory):
    """ONNX exports (sedc.accelerate, --runtime) go to a folder of this test session, never to the
    user's cache; subprocesses inherit it through the environment."""

    folder = tmp_path_factory.mktemp("sedc-cache")
    before = os.environ.get("SEDC_CACHE")
    os.environ["SEDC_CACHE"] = str(folder)
    yield folder
    if before is None:
        del os.environ["SEDC_CACHE"]
    else:
        os.environ["SEDC_CACHE"] = before


@pytest.fixture(scope="session")
def real_model():
    """The built-in EfficientNet-Lite0 (softmax outputs, [0, 1] inputs), on the CPU."""
    import sedc.models

    return sedc.models.load("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="session")
def onnx_model(real_model):
    """The built-in model exported to ONNX Runtime (``sedc.accelerate``), once per session.

    For the real-photo tests where the algorithm, not the runtime, is under test: the same
    runtime gives the same answers, at about a third of torch's cost on a CPU (a ninth on the
    AVX2 machines, where torch gets slower per image at larger batches). Each mode keeps one
    case against the torch oracle (tests/test_equivalence.py).
    """
    import sedc

    return sedc.accelerate(real_model.module, (3, 224, 224))


@pytest.fixture(scope="session")
def photos():
    """name -> (image, quickshift segments) for the four demo photos, quickshift as in the paper."""
    from sedc.imaging.samples import DEMO_PHOTOS, sample_photo
    from sedc.imaging.segmentation import segment

    out = {}
    for name in DEMO_PHOTOS:
        image = sample_photo(name)
        out[name] = (image, segment(image, "quickshift"))
    return out


@pytest.fixture(scope="session")
def oracle(real_model, photos):
    """The reference's answer (the original search with the torch model), once per (photo, mode)."""
    from sedc import reference

    cache = {}

    def get(name, mode):
        if (name, mode) not in cache:
            image, segments = photos[name]
            cache[name, mode] = reference.sedc(image, reference.TorchPredictor(real_model.module), segments, mode)
        return cache[name, mode]

    return get


@pytest.fixture(scope="module")
def coffee32():
    """The coffee photo at 32 x 32, (32, 32, 3) float32."""
    return coffee(32, 32)


@pytest.fixture(scope="module")
def seg32():
    """16 cells: small enough that even an exhaustive search (2**16 sets) is never run by accident."""
    return grid_segments(4, 4, cell=8)


@pytest.fixture(scope="module")
def seg4():
    """4 cells: an exhaustive search costs at most 16 evaluations."""
    return grid_segments(2, 2, cell=16)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium tab set driven by Playwright (skipped where none can be had).

    One browser context serves the whole session: with ``--single-process``, closing a
    context (or the last tab) can end Chromium.
    """
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright missing: pip install -e '.[test]'")
    from helpers.browser import BrowserUnavailable, chromium

    try:
        settings = chromium()
    except BrowserUnavailable as err:
        pytest.skip(f"no headless Chromium: {err}")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(**settings, timeout=60_000)
        context = launched.new_context(viewport={"width": 1280, "height": 4000})
        keep_alive = context.new_page()
        yield context
        keep_alive.close()
        launched.close()
