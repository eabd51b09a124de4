#!/usr/bin/env bash
# GPU check for sedc, in one call: the test suite on the GPU machine (CUDA tests, torchvision/timm
# model tests, which import there), then the benchmark on the GPU: original, seed sedc_pytorch and
# sedc_pytorch_batch, explain in fp32, fp16 (autocast) and channels-last, explain_many on 32 images
# against an explain loop, and harmonic against OpenCV inpainting.
#
#   make gpu-wheels                                  # here: the wheels the GPU machine lacks -> .whl/
#   device run: command "bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 590
#   OUT=/some/dir bash benchmarks/gpu_check.sh      # elsewhere; OUT defaults to ./gpu-out
#
# Run from the repository root on a machine with python3 and a CUDA build of torch. Packages
# that are missing are installed, without network, from the wheels in ./.whl (if present) into
# a private folder put on PYTHONPATH; wheels of packages already installed (torch in particular)
# are skipped, so the machine's CUDA torch is never shadowed. sedc itself is installed editable
# (or, if that fails, imported from ./src). Planned to take under 8 minutes on an H100.
#
# Writes to $OUT (6 files): env.log, pytest_gpu.log, pytest_models.log, bench_gpu.log, bench_gpu.json,
# bench_gpu.png.
# Exit status: 0 when every step passed; otherwise the last failing step's status (all steps run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DEPS="${SEDC_GPU_DEPS:-${TMPDIR:-/tmp}/sedc-gpu-deps}"
status=0

log() { printf '\n=== %s\n' "$*" | tee -a "$OUT/env.log"; }

log "environment ($(date -u +%FT%TZ))"
{
  "$PY" --version
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not available"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
} 2>&1 | tee -a "$OUT/env.log"

# --- dependencies: install only what is missing, from ./.whl, into $DEPS ------------------------
missing_wheels=()
if compgen -G ".whl/*.whl" > /dev/null; then
  for wheel in .whl/*.whl; do
    dist="$(basename "$wheel")"
    dist="${dist%%-*}"
    case "${dist,,}" in
      torch|torchvision|torchaudio|triton|nvidia_*|sedc) continue ;;  # never shadow the CUDA torch
    esac
    if ! "$PY" -c 'import importlib.metadata as m, sys; m.version(sys.argv[1])' "$dist" 2>/dev/null; then
      missing_wheels+=("$wheel")
    fi
  done
fi
if ((${#missing_wheels[@]})); then
  log "installing ${#missing_wheels[@]} missing package(s) from .whl into $DEPS"
  mkdir -p "$DEPS"
  "$PY" -m pip install --quiet --no-index --no-deps --target "$DEPS" "${missing_wheels[@]}" 2>&1 | tee -a "$OUT/env.log"
  export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
fi

if "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . >> "$OUT/env.log" 2>&1 \
   && "$PY" -c 'import sedc' 2>/dev/null; then
  log "sedc installed editable"
else
  log "editable install failed (see env.log); importing sedc from ./src"
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" -c 'import sedc, sedc.models, cv2, skimage, matplotlib; print("imports ok: sedc", sedc.__version__)' 2>&1 | tee -a "$OUT/env.log"

# --- tests: CUDA tests and the model-zoo tests (torchvision/timm import here), fast suite -----
log "pytest -m 'cuda or not slow'"
if "$PY" -c 'import pytest' 2>/dev/null; then
  rc=0
  timeout 200 "$PY" -m pytest -q -p no:cacheprovider -m "cuda or not slow" -rs tests 2>&1 \
    | tee "$OUT/pytest_gpu.log" || rc=$?
  if ((rc != 0)); then
    echo "pytest FAILED (status $rc)" | tee -a "$OUT/pytest_gpu.log"
    status=$rc
  fi
else
  echo "pytest is not installed (and no wheel in .whl): tests SKIPPED" | tee "$OUT/pytest_gpu.log"
  status=3
fi

# --- your own models: torchvision, timm and Hugging Face specs (skipped where not importable) -----
log "pytest tests/test_library_models.py tests/test_model_specs.py"
if "$PY" -c 'import pytest' 2>/dev/null; then
  rc=0
  HF_HUB_OFFLINE=1 timeout 120 "$PY" -m pytest tests/test_library_models.py tests/test_model_specs.py -q -rs 2>&1 \
    | tee "$OUT/pytest_models.log" || rc=$?
  if ((rc != 0)); then
    echo "model spec tests FAILED (status $rc)" | tee -a "$OUT/pytest_models.log"
    status=$rc
  fi
fi

# --- benchmark: comparison (interleaved, 3 rounds), throughput (32 images), inpaint ------------
log "benchmark on cuda"
rc=0
timeout 330 "$PY" benchmarks/performance_comparison.py --device cuda --repeats 3 \
  --cases comparison,throughput,inpaint --throughput-images 32 --throughput-repeats 2 \
  --json "$OUT/bench_gpu.json" --plot "$OUT/bench_gpu.png" 2>&1 | tee "$OUT/bench_gpu.log" || rc=$?
if ((rc != 0)); then
  echo "benchmark FAILED (status $rc; 1 = an exact implementation returned another counterfactual)" \
    | tee -a "$OUT/bench_gpu.log"
  status=$rc
fi

log "done: status $status; outputs in $OUT"
ls -l "$OUT" | tee -a "$OUT/env.log"
exit "$status"
