#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite offline. Extra arguments go to pytest (the fast layer
# alone: bash scripts/test.sh -m 'not slow').
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# As root, the tools of the test for a filesystem without hard links (exFAT on a loop device); it skips without.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! command -v mount.exfat-fuse >/dev/null 2>&1; then
  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q exfatprogs exfat-fuse >/dev/null) ||
    echo "test: exfatprogs/exfat-fuse could not be installed; the exFAT test will skip" >&2
fi
export HF_HUB_OFFLINE=1
export STREAMDIFFVSR_CACHE="${STREAMDIFFVSR_CACHE:-$PWD/.cache/streamdiffvsr}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# One pytest process per CPU this process may use (nproc; pytest-xdist), each test file whole in one of them
# (its module fixtures built once).
exec .venv/bin/python -m pytest -q -n "$(nproc)" --dist loadfile "$@"
