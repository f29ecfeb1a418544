"""What splitting an encode into segments costs, measured end to end with the real command line.

On a clip of SCENES scenes of SCENE_FRAMES frames (a cut between each), the same encode runs linear (one
segment) and split at every cut (``segment.min_frames`` = SCENE_FRAMES, one worker): (split - linear) / segments
is the cost of a segment beyond its frames. The start of a render worker (process, imports, script) and of the
model (the first frame) are timed on their own. From these, on paper: the wall time of a long film on a farm.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/segment_overhead.py [--size 64x48] [--scenes 6] [--scene-frames 12]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamdiffvsr.cli.media.vpy import generate_script
from streamdiffvsr.cli.segments.jobs import ScriptSpec
from streamdiffvsr.cli.segments.worker import LocalWorker
from streamdiffvsr.cli.settings.models import choose_model
from streamdiffvsr.cli.settings.presets import load_settings

CLI = Path(sys.executable).parent / "streamdiffvsr"
COLORS = ("red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange")
SETTINGS = ["--set", "codec=ffv1", "--quiet", "--model", "nano"]


def make_clip(path: Path, size: str, scenes: int, scene_frames: int) -> None:
    """``scenes`` scenes (a moving test pattern over alternating colours), one cut between each."""
    inputs, labels = [], []
    for i in range(scenes):
        source = "testsrc2" if i % 2 else f"color=c={COLORS[i % len(COLORS)]}"
        sep = "=" if i % 2 else ":"
        inputs += ["-f", "lavfi", "-i", f"{source}{sep}size={size}:rate=24:duration={scene_frames / 24:.6f}"]
        labels.append(f"[{i}]")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", f"{''.join(labels)}concat=n={scenes}:v=1:a=0",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True,
    )  # fmt: skip


def encode_seconds(source: Path, output: Path, extra: list[str], segments: int) -> float:
    """Wall time of the encode, checked to have rendered ``segments`` segments."""
    began = time.perf_counter()
    result = subprocess.run([str(CLI), "encode", str(source), str(output), *SETTINGS, *extra],
                            capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - began
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(" done in ") == (segments if segments > 1 else 0), result.stderr
    return seconds


def worker_start_seconds(source: Path, folder: Path) -> float:
    """A render worker from spawn to ready: process, torch, VapourSynth, the source, the script (no model)."""
    script = folder / "upscale.vpy"
    script.write_text(generate_script(load_settings(None)), encoding="utf-8")
    spec = ScriptSpec(
        script, {"src": str(source), "model": str(choose_model("nano").path)}, os.cpu_count() or 1
    )
    began = time.perf_counter()
    worker = LocalWorker(spec, lambda line: None, "bench")
    seconds = time.perf_counter() - began
    worker.close()
    return seconds


def film_estimate(frames: int, gpus: int, seconds_per_frame: float, per_segment: float, worker_start: float,
                  min_frames: int) -> dict[str, float]:  # fmt: skip
    """Wall time of ``frames`` on ``gpus`` workers at ``seconds_per_frame``, split at the default segment length
    (segments of about ``min_frames`` frames: the worst case for the overhead)."""
    segments = frames // min_frames
    compute = frames * seconds_per_frame
    wall = worker_start + (compute + segments * per_segment) / gpus
    return {"segments": segments, "compute_s": compute, "overhead_s": segments * per_segment,
            "wall_s": wall, "overhead_share": segments * per_segment / compute}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x48")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--scene-frames", type=int, default=12)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        source = folder / "scenes.mkv"
        make_clip(source, args.size, args.scenes, args.scene_frames)
        start = worker_start_seconds(source, folder)
        linear = encode_seconds(source, folder / "linear.mkv", [], 1)
        split = encode_seconds(
            source, folder / "split.mkv", ["--set", f"segment.min_frames={args.scene_frames}"], args.scenes
        )
    per_segment = (split - linear) / args.scenes
    film = film_estimate(172_800, 8, 0.05, per_segment, start, load_settings(None)["min_frames"])
    results = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_1min": os.getloadavg()[0],
        "clip": f"{args.scenes * args.scene_frames} frames {args.size}, {args.scenes - 1} cuts, nano, ffv1",
        "linear_s": linear, "split_s": split, "segments": args.scenes, "per_segment_s": per_segment,
        "worker_start_s": start, "film_172800_frames_8_gpus_at_0.05_s": film,
    }  # fmt: skip
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
