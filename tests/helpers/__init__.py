"""Shared helpers of the test suite (no tests here; ``tests/conftest.py`` holds only fixtures
and the hypothesis profiles).

Modules
-------
models
    The tiny networks every test draws its classifiers from (one family, listed there).
images
    Tiny images, grid label maps, a black fill, picklable loaders, and crops of a demo photo.
scoretable
    Score tables: models whose scores are an exact, known function of the removed pixels.
compare
    :func:`~helpers.compare.assert_same` and :func:`~helpers.compare.alone`: a many-image result
    against ``sedc.explain`` on that image alone.
cli
    Running ``python -m sedc`` in a subprocess on the code under test, reading its rows.
bench
    A benchmark context small enough for unit tests.
raycluster
    A real two-node Ray cluster on this machine (``ray start`` twice, loopback).
browser
    A headless Chromium for the report's browser tests.
zoo
    :func:`~helpers.zoo.require`: torchvision or timm, a skip where they do not import (a failure
    under ``SEDC_REQUIRE_ZOO=1``, as ``make test-zoo`` sets).

Importing
---------
``tests/`` has no ``__init__.py``: pytest puts ``tests/`` itself on ``sys.path`` (its default
``prepend`` import mode), so tests write ``from helpers.models import TinyNet``. Classes and
functions that travel by pickle are found by the same name in other processes:

- worker processes (spawn, forkserver) start with their parent's ``sys.path``;
- Ray workers need ``tests/`` on their ``PYTHONPATH`` (``runtime_env`` in ``tests/test_ray.py``
  and ``tests/test_task.py``; the nodes' environment in ``tests/test_ray_cluster.py``);
- subprocesses (``sedc explain --model helpers.models:FACTORY``) likewise get ``tests/`` on
  ``PYTHONPATH``.

This file imports nothing, so that importing one helper never pulls in another's dependencies.
"""
