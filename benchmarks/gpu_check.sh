#!/usr/bin/env bash
# GPU check for sedc, in one call of under 7 minutes on an H200: the CUDA tests and the
# torchvision/timm/Hugging Face model-spec tests (those libraries import there), then the
# benchmark on the GPU: original, seed sedc_pytorch and sedc_pytorch_batch, explain in fp32, fp16
# (autocast) and channels-last; harmonic against OpenCV inpainting; explain_many against an
# explain loop on 16 images.
#
#   make gpu-wheels                                  # here: the wheels the GPU machine lacks -> .whl/
#   device run: command "bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 590
#   OUT=/some/dir bash benchmarks/gpu_check.sh      # elsewhere; OUT defaults to ./gpu-out
#
# Run from the repository root on a machine with python3 and a CUDA build of torch. Packages
# that are missing are installed, without network, from the wheels in ./.whl (if present) into
# a private folder put on PYTHONPATH; wheels of packages already installed (torch in particular)
# are skipped, so the machine's CUDA torch is never shadowed. sedc itself is installed editable
# (or, if that fails, imported from ./src).
#
# Steps and time limits (450 s in all; on 2026-11-30 the install took about 20 s). A step that
# runs out gets SIGINT, so pytest still prints its summary and the benchmark keeps the JSON of
# the cases it finished (written after each case); SIGKILL follows 10 s later.
#   pytest -m cuda                                   130 s   (102 s on the H200, 2026-11-30)
#   pytest test_library_models.py test_model_specs.py 60 s   (27 s), SEDC_REQUIRE_ZOO=1: a library
#                                                            that does not import fails, not skips
#   benchmark: comparison (a warm-up round, then 3 timed rounds, interleaved), inpaint, then
#     throughput (16 images; explain loop and explain_many; a warm-up round, then 2 timed
#     rounds; no worker processes: on one GPU they add a cold start per round and no target)
#                                                    260 s   (estimated 230 s from the last run)
# Not here: the fast suite (CI's job; most of it never touches the GPU) and make test-zoo's
# tests (CI runs them on the CPU, where they run anyway; their exports need onnx and onnxscript,
# which are not among the GPU machine's packages that benchmarks/gpu_wheels.sh lists).
# pytest runs with -v (each test's name as it finishes) and -rfEs (failures, errors and skips
# named in the summary), so a cut run still says what failed.
#
# Writes to $OUT (6 files): env.log, pytest_cuda.log, pytest_models.log, bench_gpu.log,
# bench_gpu.json (after each benchmark case) and bench_gpu.png (when the benchmark finishes).
# Exit status: 0 when every step passed; otherwise the last failing step's status (all steps run;
# 124 = a step ran out of time).
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

export PYTHONUNBUFFERED=1
limit() { timeout -s INT -k 10 "$@"; }  # SIGINT first: pytest prints its summary, JSON is kept

# --- tests: the CUDA tests, then the model-spec tests (torchvision/timm/transformers import here) --
log "pytest -m cuda"
if "$PY" -c 'import pytest' 2>/dev/null; then
  rc=0
  limit 130 "$PY" -m pytest -v -p no:cacheprovider -m cuda -rfEs tests 2>&1 \
    | tee "$OUT/pytest_cuda.log" || rc=$?
  if ((rc != 0)); then
    echo "CUDA tests FAILED (status $rc; 124 = out of time)" | tee -a "$OUT/pytest_cuda.log"
    status=$rc
  fi
  log "pytest tests/test_library_models.py tests/test_model_specs.py"
  rc=0
  HF_HUB_OFFLINE=1 SEDC_REQUIRE_ZOO=1 limit 60 "$PY" -m pytest -v -p no:cacheprovider -rfEs \
    tests/test_library_models.py tests/test_model_specs.py 2>&1 | tee "$OUT/pytest_models.log" || rc=$?
  if ((rc != 0)); then
    echo "model spec tests FAILED (status $rc; 124 = out of time)" | tee -a "$OUT/pytest_models.log"
    status=$rc
  fi
else
  echo "pytest is not installed (and no wheel in .whl): tests SKIPPED" | tee "$OUT/pytest_cuda.log"
  status=3
fi

# --- benchmark: comparison, inpaint, then throughput (each case's JSON kept as it finishes) -------
log "benchmark on cuda"
rc=0
limit 260 "$PY" benchmarks/performance_comparison.py --device cuda --repeats 3 \
  --cases comparison,inpaint,throughput --throughput-images 16 --throughput-warmup 1 \
  --throughput-repeats 2 --throughput-variants loop,many \
  --json "$OUT/bench_gpu.json" --plot "$OUT/bench_gpu.png" 2>&1 | tee "$OUT/bench_gpu.log" || rc=$?
if ((rc != 0)); then
  echo "benchmark FAILED (status $rc; 1 = an exact implementation returned another counterfactual," \
    "124 = out of time)" | tee -a "$OUT/bench_gpu.log"
  status=$rc
fi

log "done: status $status; outputs in $OUT"
ls -l "$OUT" | tee -a "$OUT/env.log"
exit "$status"
