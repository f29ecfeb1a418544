"""Peak memory and time of an encode by frame size: the data behind ``encode``'s memory rule (BENCHMARKS.md).

For each LR size, a 2-frame clip goes through the real command line (nano, the default preset but ffv1,
one worker on the CPU); GNU time reports the largest process's peak RSS (the render worker) and the wall time.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/frame_memory.py [--sizes 64x48,240x136,480x270,960x540]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = Path(sys.executable).parent / "streamdiffvsr"


def measure(size: str, folder: Path) -> dict[str, float]:
    clip, output = folder / f"{size}.mkv", folder / f"{size}-out.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24",
                    "-frames:v", "2", "-c:v", "ffv1", str(clip)], check=True)  # fmt: skip
    timed = subprocess.run(
        ["/usr/bin/time", "-f", "%M %e", str(CLI), "encode", str(clip), str(output), "--model", "nano",
         "--set", "codec=ffv1", "--quiet"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak_kib, wall = timed.stderr.strip().splitlines()[-1].split()
    width, height = map(int, size.split("x"))
    return {
        "lr": size,
        "output_mpx": 16 * width * height / 1e6,
        "peak_mib": int(peak_kib) / 1024,
        "wall_s": float(wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64x48,240x136,480x270,960x540")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes.split(","):
            print(json.dumps(measure(size, Path(folder))), flush=True)


if __name__ == "__main__":
    main()
