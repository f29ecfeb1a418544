#!/usr/bin/env bash
# Set up everything vs-streamdiffvsr needs in ./.venv: Python 3.12+, the package and its dependencies
# (torch, VapourSynth R7x+ with vspipe, bestsource), and ffmpeg with libx265.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  # Prefer 3.12 (what the pinned wheels are tested with), then any newer Python.
  for candidate in python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for version in $(pyenv versions --bare | grep -E '^3\.(1[2-9])(\.|$)' | sort -V); do
      echo "$(pyenv root)/versions/$version/bin/python3"; return 0
    done
  fi
  return 1
}

if ! command -v ffmpeg >/dev/null 2>&1 || ! ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx265; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ffmpeg (with libx265) from the distribution's packages" >&2
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ffmpeg >/dev/null
  else
    echo "setup: ffmpeg with libx265 is missing; install it (e.g. 'sudo apt-get install ffmpeg') and rerun" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python=$(find_python) || { echo "setup: Python 3.12 or newer is required (python3.12 not found on PATH or in pyenv)" >&2; exit 1; }
  echo "setup: creating .venv with $python" >&2
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# vspipe (from the vapoursynth wheel) must know which Python to embed when the venv is not activated.
.venv/bin/vapoursynth config >/dev/null
echo "setup: ready (.venv/bin/streamdiffvsr, .venv/bin/vspipe)" >&2
