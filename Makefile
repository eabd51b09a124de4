# Two commands from zero: `make demo` (explain four real photos) and `make test` (the test suite).
# Each creates .venv and installs torch FIRST (a bare torch requirement would pull a multi-GB CUDA
# build), then sedc with its test extras and the ONNX Runtime fast path (sedc[onnx]).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.sedc-installed

.PHONY: install demo test test-zoo test-fast mutation mutation-smoke bench bench-quick gpu-wheels clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,ray,onnx,hf]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sedc demo --out sedc-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15
	$(BIN)/python tools/mutation_smoke.py

# The model-zoo tests (torchvision: and timm: specs, pretrained-weight loading, accelerate on their
# architectures) in a venv of their own, .venv-zoo: the registry's torchvision wheel needs the
# registry's (CUDA) torch build, which runs fine on a CPU; beside .venv's CPU-only torch it fails
# to import ("operator torchvision::nms does not exist"). `===` (PEP 440 arbitrary equality) skips
# the local 2.13.0+cpu wheel of /opt/wheels; torchvision is pinned in the same command, or pip
# takes the newest torchvision and replaces torch to match it. About 4 min and 5.4 GB the first
# time (README, Development). SEDC_REQUIRE_ZOO=1 turns "torchvision/timm cannot be imported" into
# a failure instead of a skip.
ZOO_VENV ?= .venv-zoo
ZOO_TORCH ?= torch===2.13.0
ZOO_TORCHVISION ?= torchvision==0.28.0
ZOO_BIN := $(ZOO_VENV)/bin
ZOO_STAMP := $(ZOO_VENV)/.sedc-installed
ZOO_TESTS ?= tests/test_library_models.py tests/test_zoo_pretrained.py tests/test_zoo_architectures.py
ZOO_CHECK := import torch, torchvision, timm; print(f"zoo: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}")

$(ZOO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(ZOO_VENV)
	$(ZOO_BIN)/python -m pip install -q --upgrade pip
	$(ZOO_BIN)/python -m pip install -q "$(ZOO_TORCH)" "$(ZOO_TORCHVISION)"
	$(ZOO_BIN)/python -m pip install -q -e ".[test,torchvision,timm,onnx]"
	$(ZOO_BIN)/python -c '$(ZOO_CHECK)'
	touch $(ZOO_STAMP)

test-zoo: $(ZOO_STAMP)
	$(ZOO_BIN)/python -c '$(ZOO_CHECK)'
	SEDC_REQUIRE_ZOO=1 $(ZOO_BIN)/python -m pytest -q --durations=8 $(ZOO_TESTS)

# The quick subset of `make mutation`: six known mutants of the core, each must fail a test (< 1 min).
mutation-smoke: $(STAMP)
	$(BIN)/python tools/mutation_smoke.py

# The full mutation score (docs/mutation.md): mutmut, pinned, with the config in pyproject.toml
# ([tool.mutmut]), on the core against the fast core tests. Long (see docs/mutation.md); not in CI.
# One OpenMP thread: a forked mutant child that reuses its parent's thread pool deadlocks.
# pytest-timeout ends a test a mutant sent into an endless loop after 30 s (a kill), instead of
# mutmut's CPU-time limit, minutes for the core's functions.
MUTMUT ?= mutmut==3.8.1 pytest-timeout==2.4.0
MUTATION_JOBS ?= 2
mutation: $(STAMP)
	$(BIN)/python -m pip install -q $(MUTMUT)
	rm -rf mutants
	env -u PYTHONPATH HYPOTHESIS_PROFILE=mutation OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		PYTEST_ADDOPTS="--timeout=30 --timeout-method=signal" \
		$(BIN)/mutmut run --max-children $(MUTATION_JOBS) > mutants-run.log 2>&1 || (tail -c 3000 mutants-run.log; exit 1)
	$(BIN)/python tools/mutation_report.py --survivors

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/performance_comparison.py --repeats 3 --json bench-out/bench_cpu.json --plot bench-out/bench_cpu.png

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/performance_comparison.py --quick

# Wheels the GPU machine lacks (Python 3.12), into .whl/ for a device call: see benchmarks/gpu_check.sh.
gpu-wheels:
	bash benchmarks/gpu_wheels.sh

clean:
	rm -rf $(VENV) $(ZOO_VENV) sedc-demo sedc-out bench-out .pytest_cache mutants mutants-run.log .hypothesis
