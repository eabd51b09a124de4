#!/usr/bin/env bash
# GPU check for sedc: the CUDA tests, then the benchmark (comparison + scaling) on the GPU.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh      # OUT defaults to ./gpu-out
#
# Run from the repository root on a machine with python3 and a CUDA build of torch. Packages
# that are missing are installed, without network, from the wheels in ./.whl (if present) into
# a private folder put on PYTHONPATH; wheels of packages already installed (torch in particular)
# are skipped, so the machine's CUDA torch is never shadowed. sedc itself is installed editable
# (or, if that fails, imported from ./src). Takes about 2-4 minutes on an H100.
#
# Writes to $OUT: env.log, pytest_cuda.log, pytest_models.log, bench_gpu.log, bench_gpu.json, bench_gpu.png.
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

# --- CUDA tests ------------------------------------------------------------------------------
log "pytest -m cuda"
if "$PY" -c 'import pytest' 2>/dev/null; then
  rc=0
  "$PY" -m pytest -m cuda tests -q 2>&1 | tee "$OUT/pytest_cuda.log" || rc=$?
  if ((rc == 5)); then
    echo "no tests marked cuda were collected" | tee -a "$OUT/pytest_cuda.log"
  elif ((rc != 0)); then
    echo "pytest -m cuda FAILED (status $rc)" | tee -a "$OUT/pytest_cuda.log"
    status=$rc
  fi
else
  echo "pytest is not installed (and no wheel in .whl): CUDA tests SKIPPED" | tee "$OUT/pytest_cuda.log"
  status=3
fi

# --- your own models: torchvision, timm and Hugging Face specs (skipped where not importable) -----
log "pytest tests/test_library_models.py tests/test_model_specs.py"
if "$PY" -c 'import pytest' 2>/dev/null; then
  rc=0
  HF_HUB_OFFLINE=1 "$PY" -m pytest tests/test_library_models.py tests/test_model_specs.py -q -rs 2>&1 \
    | tee "$OUT/pytest_models.log" || rc=$?
  if ((rc != 0)); then
    echo "model spec tests FAILED (status $rc)" | tee -a "$OUT/pytest_models.log"
    status=$rc
  fi
fi

# --- benchmark: comparison (interleaved, 3 rounds) + scaling ---------------------------------
log "benchmark on cuda"
rc=0
"$PY" benchmarks/performance_comparison.py --device cuda --repeats 3 --scaling \
  --json "$OUT/bench_gpu.json" --plot "$OUT/bench_gpu.png" 2>&1 | tee "$OUT/bench_gpu.log" || rc=$?
if ((rc != 0)); then
  echo "benchmark FAILED (status $rc; 1 = an exact implementation returned another counterfactual)" \
    | tee -a "$OUT/bench_gpu.log"
  status=$rc
fi

log "done: status $status; outputs in $OUT"
ls -l "$OUT" | tee -a "$OUT/env.log"
exit "$status"
