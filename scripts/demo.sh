#!/usr/bin/env bash
# Set up (scripts/setup.sh), make a 1-second sample clip with ffmpeg's test sources (video + audio),
# and upscale + encode it 4x with `streamdiffvsr encode` on the embedded offline model.
# Usage: bash scripts/demo.sh [extra `streamdiffvsr encode` options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
ffmpeg -v error -y -f lavfi -i testsrc2=size=96x72:rate=24:duration=1 -f lavfi -i sine=frequency=440:duration=1 \
  -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest out/sample.mkv
.venv/bin/streamdiffvsr encode out/sample.mkv out/sample_4x.mkv --overwrite "$@"
echo "demo: 4x upscale written to $PWD/out/sample_4x.mkv (input $PWD/out/sample.mkv)"
