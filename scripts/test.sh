#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite offline. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
export STREAMDIFFVSR_CACHE="${STREAMDIFFVSR_CACHE:-$PWD/.cache/streamdiffvsr}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -q "$@"
