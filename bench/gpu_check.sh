#!/usr/bin/env bash
# The GPU check: one call on the GPU machine (an H200; no network; python3 with torch, no diffusers/VapourSynth),
# under 8 minutes. Installs the package and the carried wheels (bench/prepare_gpu_wheels.sh fills .gpu-wheels/),
# runs the CUDA tests, then bench/benchmark.py at 320x180 -> 1280x720, full-size architecture: baseline (the
# official algorithm: fp32, flow at output resolution), ours (bf16) with memory after 10 / 200 frames, and ours
# compiled; if time is left, ours compiled with CUDA graphs. Logs go to $OUT; the summary table is printed last.
#
#   bash bench/gpu_check.sh                 # on the GPU machine (see BENCHMARKS.md for the device call)
#   bash bench/gpu_check.sh --cpu-dry-run   # here: the same steps on the CPU, tiny sizes, a few frames
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--cpu-dry-run" ] && DRY=1
START=$SECONDS
OUT=${OUT:-$PWD/out/gpu_check}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
PY=${PYTHON:-python3}
[ $DRY = 1 ] && [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 STREAMDIFFVSR_CACHE="$WORK/cache"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$WORK/inductor}"
say() { echo "gpu_check [$((SECONDS - START)) s]: $*"; }

# 1. Install (offline): the carried wheels and this package into one target folder, first on the path.
WHEELS=0
ls .gpu-wheels/*.whl >/dev/null 2>&1 && WHEELS=1
[ $WHEELS = 1 ] && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
(
  set -e
  if [ $WHEELS = 1 ]; then
    "$PY" -m pip install -q --no-index --find-links .gpu-wheels --no-deps --no-cache-dir --target "$WORK/site" \
      .gpu-wheels/diffusers-*.whl .gpu-wheels/vapoursynth-*.whl .
  else
    echo "no .gpu-wheels/*.whl: using the packages already installed (run bench/prepare_gpu_wheels.sh to carry them)"
  fi
  "$PY" - <<'PYEOF'
import importlib.metadata as m, platform, torch
import diffusers, streamdiffvsr, vapoursynth
print("python", platform.python_version(), "| streamdiffvsr from", streamdiffvsr.__file__)
print("vapoursynth from", vapoursynth.__file__, "| diffusers from", diffusers.__file__)
print(" | ".join(f"{d} {m.version(d)}" for d in ("torch", "torchvision", "diffusers", "vapoursynth", "transformers")))
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
PYEOF
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
) >"$OUT/setup.log" 2>&1
status=$?
cat "$OUT/setup.log"
[ $status = 0 ] || { say "setup failed (exit $status), see setup.log"; exit $status; }
if [ $DRY = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  say "no CUDA device here; for a CPU rehearsal use --cpu-dry-run"; exit 2
fi

# 2. The CUDA tests (and the CPU-side GPU-path tests, minus the CPU compile test: CI runs that one).
say "tests"
timeout 180 "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT/tests.xml" tests/test_cuda.py \
  tests/test_gpu_path.py -k "not test_compiled_networks_give_the_same_frames" 2>&1 | tee "$OUT/tests.log"

# 3. The benchmark: baseline, ours (+ memory over 200 frames), ours compiled.
if [ $DRY = 1 ]; then
  SIZE=(--tiny --size 32x32 --frames 3 --memory-frames 4,5 --flow-size 32x32 --device cpu)
  COMPILE=${DRY_RUN_COMPILE-default}  # DRY_RUN_COMPILE= (empty) skips compiling (minutes on a small CPU)
  BENCH_LIMIT=600
else
  SIZE=(--size 320x180 --frames 12 --memory-frames 10,200 --device cuda)
  COMPILE=default
  BENCH_LIMIT=$((420 - (SECONDS - START)))
fi
say "benchmark (limit ${BENCH_LIMIT} s)"
timeout "$BENCH_LIMIT" "$PY" bench/benchmark.py "${SIZE[@]}" ${COMPILE:+--compile "$COMPILE"} \
  --json "$OUT/bench.json" --workdir "$WORK/bench" 2>&1 | tee "$OUT/bench.log"

# 4. With time left (the whole check must end within 8 minutes): ours compiled with CUDA graphs.
LEFT=$((450 - (SECONDS - START)))
if [ $DRY = 0 ] && [ $LEFT -gt 60 ]; then
  say "CUDA graphs (limit ${LEFT} s)"
  timeout "$LEFT" "$PY" bench/benchmark.py --size 320x180 --frames 12 --device cuda --skip-baseline \
    --compile reduce-overhead --json "$OUT/bench_cudagraphs.json" --workdir "$WORK/bench" 2>&1 | tee -a "$OUT/bench.log"
else
  say "no time left for the CUDA-graph variant (or a dry run)"
fi

# 5. One table, last.
"$PY" bench/gpu_summary.py "$OUT" | tee "$OUT/summary.md"
say "done; logs in $OUT"
