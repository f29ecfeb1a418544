#!/usr/bin/env bash
# Fill .gpu-wheels/ (git-ignored) with the wheels bench/gpu_check.sh installs on the GPU machine, which has no
# network: its python3 (3.12) has torch, torchvision, opencv, transformers, accelerate, huggingface-hub and
# safetensors, but no diffusers or VapourSynth. torch/torchvision are never downloaded (installed there, and
# far over the 64 MiB the device tool carries). Usage: bash bench/prepare_gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.gpu-wheels
mkdir -p "$DEST"
# Versions are those this project is tested with here (.venv); --no-deps: their other needs are on the machine.
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# Pure-Python (py3-none-any): diffusers, and the build backend for our own package (with what wheel needs).
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$DEST" \
  "diffusers==$(version diffusers)" "setuptools==$(version setuptools)" "wheel>=0.40" "packaging==$(version packaging)"
# Compiled for CPython 3.12 on x86-64 Linux: VapourSynth (its wheel carries the core library).
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$DEST" --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" "vapoursynth==$(version vapoursynth)"
ls -l "$DEST"
# The device tool carries the working tree and the carried paths together: at most 64 MiB.
total=$(( $(du -sb "$DEST" | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ))
echo "prepare_gpu_wheels: $DEST + tracked files = $((total / 1024 / 1024)) MiB (limit 64 MiB)"
[ "$total" -lt $((60 << 20)) ] || { echo "prepare_gpu_wheels: over the carry limit" >&2; exit 1; }
