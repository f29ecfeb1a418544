"""A batch against a shell loop, end to end with the real command line, side by side in one run.

FILES short clips (two scenes of SCENE_FRAMES frames each, so that each file splits into two segments) are
encoded twice with the same settings on WORKERS local workers: one by one, as a shell loop does
(``for f in in/*.mkv; do streamdiffvsr encode "$f" loop/...; done``: the workers and the model start for every
file), and as one batch (``streamdiffvsr encode in/ batch/``: one pool for all files). The outputs must be
equal frame for frame (framemd5); the ratio batch / loop is the batch's gain.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/batch_overhead.py [--files 6] [--size 64x48] [--scene-frames 12]
        [--rounds 2]

With ``--rounds 2`` the order is loop, batch, batch, loop (ABBA), so that a load that changes during the run
weighs on both alike; each round's times and the ratio of the sums are printed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "streamdiffvsr"
SETTINGS = ["--model", "nano", "--set", "steps=2", "--set", "codec=ffv1", "--quiet"]


def make_clip(path: Path, size: str, scene_frames: int, hue: int) -> None:
    """Two scenes (a moving test pattern, then another), one cut between, tinted by ``hue``."""
    seconds = f"{scene_frames / 24:.6f}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=24:duration={seconds}",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds}",
         "-filter_complex", f"[0][1]concat=n=2:v=1:a=0,hue=h={hue}[v]", "-map", "[v]",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True,
    )  # fmt: skip


def framemd5(path: Path) -> str:
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n", 4)[-1]  # fmt: skip


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--size", default="64x48")
    parser.add_argument("--scene-frames", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    split = ["--set", f"segment.min_frames={args.scene_frames}", "--workers", str(args.workers)]
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        names = [f"ep{n + 1:02d}.mkv" for n in range(args.files)]
        for n, name in enumerate(names):
            make_clip(folder / name, args.size, args.scene_frames, 360 * n // args.files)
        times: dict[str, list[float]] = {"loop": [], "batch": []}
        equal = True
        for run in range(args.rounds):
            for kind in ("loop", "batch") if run % 2 == 0 else ("batch", "loop"):
                out = Path(tmp) / f"{kind}{run}"
                if kind == "loop":  # the shell loop
                    out.mkdir()
                    began = time.perf_counter()
                    for name in names:
                        timed([str(CLI), "encode", str(folder / name), str(out / name), *SETTINGS, *split])
                    times[kind].append(time.perf_counter() - began)
                else:
                    times[kind].append(timed([str(CLI), "encode", str(folder), str(out), *SETTINGS, *split]))
            equal &= all(framemd5(Path(tmp) / f"loop{run}" / n) == framemd5(Path(tmp) / f"batch{run}" / n)
                         for n in names)  # fmt: skip
    frames = 2 * args.scene_frames * args.files
    print(f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{args.files} files of {2 * args.scene_frames} frames ({frames} in all), {args.size}, {args.workers} "
          f"workers, two segments a file; outputs equal frame for frame: {equal}")  # fmt: skip
    print("| round | loop (one encode per file) | batch (one pool) | batch / loop |\n|---|---|---|---|")
    for run, (loop_s, batch_s) in enumerate(zip(times["loop"], times["batch"], strict=True)):
        print(f"| {run + 1} | {loop_s:.1f} s | {batch_s:.1f} s | {batch_s / loop_s:.2f} |")
    print(f"batch / loop over all rounds: {sum(times['batch']) / sum(times['loop']):.2f}")


if __name__ == "__main__":
    main()
