"""Border detection (``detect_borders``, crop=auto) on a long source, against what BestSource's indexing of the
same file costs (an encode pays the indexing anyway; detection comes on top of it).

    python bench/border_detection.py --hours 1 --size 320x240

Makes the source once with ffmpeg (testsrc2 letterboxed into SIZE, x264 ultrafast, 24 fps; kept in --workdir
for the next run), then times: BestSource opening it with no index (it decodes the whole file), opening it again
(index cached), and ``detect_borders`` over the default 100 frames, counting the frames it asks for.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import vapoursynth as vs

from streamdiffvsr.vsfilter import detect_borders

RATE = 24


def make_source(path: Path, hours: float, width: int, height: int) -> float:
    """The letterboxed source (picture 3/4 of the height, bars above and below); seconds it took."""
    picture = height * 3 // 4 // 2 * 2
    partial = path.with_suffix(".part.mkv")  # an interrupted run leaves no file that looks complete
    start = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=s={width}x{picture}:r={RATE}:d={hours * 3600},pad={width}:{height}:0:(oh-ih)/2",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--size", default="320x240", help="WxH of the source")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--workdir", default="/tmp/streamdiffvsr-bench")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    folder = Path(args.workdir) / "borders"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"letterboxed-{args.hours:g}h-{width}x{height}.mkv"
    made = None if path.exists() else make_source(path, args.hours, width, height)
    index = folder / "index"
    shutil.rmtree(index, ignore_errors=True)

    core = vs.core
    start = time.perf_counter()
    clip = core.bs.VideoSource(source=str(path), cachepath=str(index))
    indexing = time.perf_counter() - start
    start = time.perf_counter()
    clip = core.bs.VideoSource(source=str(path), cachepath=str(index))
    reopening = time.perf_counter() - start

    requested: list[int] = []

    def count(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        requested.append(n)
        return f

    start = time.perf_counter()
    crop = detect_borders(core.std.ModifyFrame(clip, clip, count), samples=args.samples)
    detection = time.perf_counter() - start

    print(f"# {platform.node()} | {os.cpu_count()} CPUs | vapoursynth {core.core_version.release_major}")
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC | {' '.join(sys.argv)}")
    size_mb = path.stat().st_size / 1e6
    print(
        f"source: {path.name}, {clip.num_frames} frames, {size_mb:.0f} MB"
        + (f", made in {made:.0f} s" if made else "")
    )
    print(f"BestSource, no index (decodes the whole file): {indexing:.1f} s")
    print(f"BestSource, index cached: {reopening:.2f} s")
    print(f"detect_borders: {detection:.2f} s for {len(requested)} frames -> crop {crop}")
    print(f"detection / indexing: {detection / indexing:.3f}")


if __name__ == "__main__":
    main()
