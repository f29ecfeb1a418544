"""How close ``streamdiffvsr preview``'s estimate comes to the real wall time of the encode it estimates.

Makes a clip of four scenes from ffmpeg's test sources and the repository's astronaut photo (a pan), runs
``preview`` on it and reads the estimate it prints, then times ``encode`` of the same clip with the same model
and preset, both as a user would run them (fresh processes). Prints one Markdown table row.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/preview_estimate.py --size 128x72 --seconds 10
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "streamdiffvsr"
PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "nano_heldout_astronaut.png"
FPS = 24


def make_clip(path: Path, width: int, height: int, seconds: float) -> None:
    """Four scenes of ``seconds`` / 4 each: a pan over the photo, mandelbrot, testsrc2, cellular automaton."""
    part = seconds / 4
    size = f"{width}x{height}"
    scenes = [
        ["-loop", "1", "-framerate", str(FPS), "-t", f"{part}", "-i", str(PHOTO)],
        ["-f", "lavfi", "-i", f"mandelbrot=size={size}:rate={FPS}:end_scale=0.05,trim=duration={part}"],
        ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={part}"],
        ["-f", "lavfi", "-i", f"cellauto=size={size}:rate={FPS}:rule=110,trim=duration={part}"],
    ]
    pan = f"[0:v]scale={width * 2}:-2:flags=area,crop={width}:{height}:x='t*8':y='t*3',setsar=1,fps={FPS}[p0]"
    others = ";".join(f"[{k}:v]format=yuv420p,setsar=1[p{k}]" for k in (1, 2, 3))
    graph = f"{pan};{others};[p0][p1][p2][p3]concat=n=4:v=1,format=yuv420p[v]"
    inputs = [arg for scene in scenes for arg in scene]
    command = ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[v]"]
    subprocess.run([*command, "-c:v", "libx264", "-crf", "10", str(path)], check=True)


def seconds(text: str) -> int:
    hours, minutes, secs = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + secs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x72")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default="nano")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--workers", type=int, default=1, help="workers of the encode (and of the estimate)")
    parser.add_argument("--min-frames", type=int, help="segment.min_frames (to split a short clip)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    common = ["--model", args.model, "--preset", args.preset, "--workers", str(args.workers)]
    if args.min_frames:
        common += ["--set", f"segment.min_frames={args.min_frames}"]
    with tempfile.TemporaryDirectory(prefix="preview-estimate-") as scratch:
        folder = Path(scratch)
        clip = folder / "clip.mkv"
        make_clip(clip, width, height, args.seconds)
        began = time.perf_counter()
        look = subprocess.run(
            [str(CLI), "preview", str(clip), str(folder / "look.png"), *common],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        preview_seconds = time.perf_counter() - began
        print(look.stdout, end="")
        estimate = seconds(re.search(r"wall time\s+(\d+:\d\d:\d\d)", look.stdout).group(1))
        speed = float(re.search(r"speed\s+([\d.]+) s/frame", look.stdout).group(1))
        began = time.perf_counter()
        subprocess.run(
            [str(CLI), "encode", str(clip), str(folder / "out.mkv"), *common, "--quiet"], check=True
        )
        actual = time.perf_counter() - began
    frames = round(args.seconds * FPS)
    print(
        "| source | frames | model, preset | workers | preview took | measured s/frame | estimate | real encode "
        "| estimate / real |"
    )
    print(
        f"| {args.size} | {frames} | {args.model}, {args.preset} | {args.workers} | {preview_seconds:.0f} s | {speed:.3f} | "
        f"{estimate} s | {actual:.0f} s | {estimate / actual:.2f} |"
    )


if __name__ == "__main__":
    main()
