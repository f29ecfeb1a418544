"""What splitting an encode into segments costs: the fixed cost of one segment (worker process start, model
load, first frame, encoder start and verification) as a fraction of the segment's compute at the default
segment length, and the seconds to join and mux the segments of a synthetic 10-minute 720p encode.

    python bench/segment_overhead.py --size 320x180 --frames 6
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from streamdiffvsr.cli.media.ffmpeg_cmd import container_for, ffmpeg_command
from streamdiffvsr.cli.media.probe import probe
from streamdiffvsr.cli.media.tools import require_encode_tools
from streamdiffvsr.cli.media.vpy import render_script
from streamdiffvsr.cli.segments.job import SegmentJob, render_segment
from streamdiffvsr.cli.segments.join import join, write_concat_list
from streamdiffvsr.cli.segments.plan import Segment
from streamdiffvsr.cli.settings.models import choose_model
from streamdiffvsr.cli.settings.presets import load_settings
from streamdiffvsr.cli.settings.schema import KEYS_BY_NAME


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def segment_seconds(folder: Path, source: Path, frames: int, model: str) -> float:
    """Wall time of one segment job of ``frames`` frames (a fresh vspipe: process, model, frames, encode)."""
    settings = load_settings("preview", ["x265_preset=ultrafast"])
    script = folder / "upscale.vpy"
    script.write_text(render_script(settings), encoding="utf-8")
    tools = require_encode_tools()
    job = SegmentJob(
        segment=Segment(0, 0, frames - 1), count=1, script=script,
        vpy_args={"src": str(source), "model": model}, source=source, target=folder / f"seg-{frames}.mkv",
        info=probe(source, tools.ffprobe), encoder=settings.section("encoder"), tag_colour=True,
        check_anchor=True,
    )  # fmt: skip
    began = time.perf_counter()
    result = render_segment(job)
    assert result.frames == frames, result
    return time.perf_counter() - began


def join_seconds(folder: Path, minutes: float, segment_s: float) -> tuple[float, int]:
    """Seconds to join and mux ``minutes`` of 720p x265 segments (copies of one synthetic segment)."""
    fps = 24
    segment = folder / "one.mkv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={fps}:duration={segment_s}", "-c:v", "libx265",
           "-preset", "ultrafast", "-crf", "35", "-x265-params", "log-level=error", "-f", "matroska",
           str(segment))  # fmt: skip
    count = round(minutes * 60 / segment_s)
    files = []
    for i in range(count):
        files.append(folder / f"segment-{i:05d}.mkv")
        shutil.copy(segment, files[-1])
    source = folder / "source.mkv"  # the audio, subtitles and chapters come from here
    ffmpeg("-f", "lavfi", "-i", f"color=size=32x24:rate={fps}:duration={minutes * 60}", "-f", "lavfi", "-i",
           f"sine=frequency=440:duration={minutes * 60}", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", str(source))  # fmt: skip
    tools = require_encode_tools()
    info = probe(source, tools.ffprobe)
    per_segment = round(segment_s * fps)
    listing = folder / "segments.ffconcat"
    write_concat_list(listing, files, [per_segment] * count, info.fps)
    output = folder / "joined.mkv"
    partial = folder / "joined.partial.mkv"
    encoder = load_settings(None).section("encoder")
    command = ffmpeg_command(
        tools.ffmpeg, source, info, partial, container_for(output), encoder, joined=listing
    )
    began = time.perf_counter()
    join(command, tools.ffprobe, partial, output, per_segment * count)
    return time.perf_counter() - began, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180", help="source size (output is 4x)")
    parser.add_argument(
        "--frames", type=int, default=6, help="frames of the short segment (the long one: 2x)"
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the synthetic join")
    parser.add_argument("--segment-seconds", type=float, default=40.0, help="length of each joined segment")
    args = parser.parse_args()
    default_frames = KEYS_BY_NAME["min_frames"].default
    with tempfile.TemporaryDirectory(prefix="segbench-") as scratch:
        folder = Path(scratch)
        source = folder / "src.mkv"
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={args.size}:rate=24:duration=4", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(source))  # fmt: skip
        model = str(choose_model("nano").path)
        short = segment_seconds(folder, source, args.frames, model)
        long = segment_seconds(folder, source, 2 * args.frames, model)
        per_frame = (long - short) / args.frames
        fixed = short - per_frame * args.frames
        joined, count = join_seconds(folder, args.minutes, args.segment_seconds)
    compute = per_frame * default_frames
    join_share = joined / (args.minutes * 60 * 24 / default_frames)  # join time per segment of default length
    print(
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, machine: {platform.processor() or platform.machine()}"
    )
    print(f"segment of {args.frames} frames: {short:.1f} s; of {2 * args.frames}: {long:.1f} s")
    print(
        f"per frame: {per_frame:.3f} s; fixed cost per segment (start, model load, first frame, encoder): {fixed:.1f} s"
    )
    print(
        f"at segment.min_frames={default_frames}: compute {compute:.0f} s, fixed {fixed:.1f} s + join share "
        f"{join_share:.2f} s = {(fixed + join_share) / compute:.1%} overhead"
    )
    print(f"join + mux of {count} segments, {args.minutes:g} min of 720p: {joined:.2f} s")


if __name__ == "__main__":
    main()
