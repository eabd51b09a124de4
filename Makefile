# Two commands from zero: `make demo` (explain four real photos) and `make test` (the test suite).
# Each creates .venv and installs torch FIRST (a bare torch requirement would pull a multi-GB CUDA
# build), then sedc with its test extras and the ONNX Runtime fast path (sedc[onnx]).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.sedc-installed

.PHONY: install demo test test-fast bench bench-quick gpu-wheels clean

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
	$(BIN)/python -m pytest -q

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
	rm -rf $(VENV) sedc-demo sedc-out bench-out .pytest_cache
