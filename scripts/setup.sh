#!/usr/bin/env bash
# Set up everything vs-streamdiffvsr needs in ./.venv: Python 3.12+, the package and its dependencies
# (torch, VapourSynth R7x+ with vspipe, bestsource), and ffmpeg with libx265.
# Idempotent: a second run only checks. Works as a normal user when ffmpeg is installed; as root it installs
# ffmpeg from the distribution's packages itself. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

is_recent_python() { "$1" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; }

find_python() {
  # Prefer 3.12 (what the pinned wheels are tested with), then any newer Python: on PATH, then pyenv's, then uv's.
  local candidate version
  for candidate in python3.12 python3.13 python3.14 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && is_recent_python "$candidate"; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for version in $(pyenv versions --bare | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -V); do
      candidate="$(pyenv root)/versions/$version/bin/python3"
      if is_recent_python "$candidate"; then echo "$candidate"; return 0; fi
    done
  fi
  if command -v uv >/dev/null 2>&1 && candidate=$(uv python find '>=3.12' 2>/dev/null) && is_recent_python "$candidate"; then
    echo "$candidate"; return 0
  fi
  return 1
}

install_python() {
  # Where a tool that installs Pythons is at hand, get 3.12 with it (as the user running setup).
  if command -v uv >/dev/null 2>&1; then
    say "installing Python 3.12 with uv"
    uv python install 3.12 >&2 && return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    say "installing Python 3.12 with pyenv (it compiles Python: a few minutes)"
    pyenv install --skip-existing 3.12 >&2 && return 0
  fi
  return 1
}

# The whole encoder list, then a match: `ffmpeg -encoders | grep -q` fails under pipefail when grep exits
# at the first match and ffmpeg dies of SIGPIPE.
ffmpeg_has_x265() {
  local encoders
  command -v ffmpeg >/dev/null 2>&1 || return 1
  encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null) || return 1
  [[ $encoders == *libx265* ]]
}

if ! ffmpeg_has_x265; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ffmpeg (with libx265) from the distribution's packages"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ffmpeg >/dev/null
  else
    say "ffmpeg with libx265 is missing; install it (Debian/Ubuntu: 'sudo apt-get install ffmpeg'; Fedora: ffmpeg from RPM Fusion; macOS: 'brew install ffmpeg') and rerun"
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  if ! python=$(find_python); then
    install_python || true
    python=$(find_python) || {
      say "Python 3.12 or newer is required and none was found (python3 here: $(python3 --version 2>/dev/null || echo none that runs)). Get it, then rerun this script: 'pipx install uv' (Debian/Ubuntu: 'sudo apt-get install pipx') and then 'uv python install 3.12' need no root; or 'pyenv install 3.12'; or on Ubuntu 22.04 'sudo add-apt-repository ppa:deadsnakes/ppa && sudo apt-get install python3.12-venv'"
      exit 1
    }
  fi
  say "creating .venv with $python (about 6.5 GB with torch's CUDA build, which also runs on the CPU)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# setuptools prints an "Editable installation" warning box on every install of this layout (package_dir maps core/,
# scripts/, ... to streamdiffvsr.*): expected here, so that one warning is silenced, every other one shown.
EDITABLE_QUIET="ignore:Editable installation"
PYTHONWARNINGS="$EDITABLE_QUIET" .venv/bin/python -m pip install -q -e '.[dev]'
# vspipe (from the vapoursynth wheel) must know which Python to embed when the venv is not activated.
.venv/bin/vapoursynth config >/dev/null
say "ready (.venv/bin/streamdiffvsr, .venv/bin/vspipe)"
