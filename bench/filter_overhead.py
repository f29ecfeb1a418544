"""The VapourSynth filter's own overhead (frame<->tensor copies, caching, checkpoints, locking, scene detection)
against the engine step alone, on the same clip and settings, in one process.

    python bench/filter_overhead.py --size 320x180 --frames 30
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import vapoursynth as vs

from streamdiffvsr import StreamDiffVSR
from streamdiffvsr.tiny_checkpoint import build_tiny_checkpoint
from streamdiffvsr.vsfilter import stream_diffvsr


def source_clip(core: vs.Core, frames: list[np.ndarray]) -> vs.VideoNode:
    h, w = frames[0].shape[1:]
    blank = core.std.BlankClip(format=vs.RGBS, width=w, height=h, length=len(frames))

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n][p])
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x180", help="LR WxH")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--flow", default="dis")
    parser.add_argument("--workdir", default="/tmp/streamdiffvsr-bench")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    root = build_tiny_checkpoint(Path(args.workdir) / "tiny-overhead")
    rng = np.random.default_rng(0)
    # a smooth texture panned by a pixel or so per frame: no scene cuts, the temporal path runs every frame
    coarse = rng.random(((h + 8) // 8, (w + 8) // 8, 3), dtype=np.float32)
    base = cv2.resize(coarse, (w + 8, h + 8), interpolation=cv2.INTER_CUBIC).clip(0, 1).transpose(2, 0, 1)
    frames = [
        np.ascontiguousarray(base[:, i % 8 : i % 8 + h, i // 2 % 8 : i // 2 % 8 + w])
        for i in range(args.frames)
    ]
    settings = {"flow": args.flow, "seed": 0}

    engine = StreamDiffVSR.from_pretrained(root, device="cpu", **settings)
    stream = engine.stream()
    tensors = [torch.from_numpy(f)[None] for f in frames]
    stream.step(tensors[0])  # warm-up
    stream.reset()
    start = time.perf_counter()
    for t in tensors:
        stream.step(t)
    engine_seconds = time.perf_counter() - start

    core = vs.core
    core.num_threads = 1
    source = source_clip(core, frames)
    start = time.perf_counter()
    for n in range(len(frames)):
        source.get_frame(n)
    source_seconds = time.perf_counter() - start  # making the test frames is not the filter's cost

    stream_diffvsr(source_clip(core, frames), model=str(root), **settings).get_frame(0)  # warm-up
    timed = stream_diffvsr(source_clip(core, frames), model=str(root), **settings)
    start = time.perf_counter()
    for n in range(len(frames)):
        timed.get_frame(n)
    filter_seconds = time.perf_counter() - start - source_seconds

    print(
        f"# {platform.node()} | CPU | torch {torch.__version__} | vapoursynth {core.core_version.release_major}"
    )
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC | {' '.join(sys.argv)}")
    print(f"engine alone: {engine_seconds / len(frames) * 1000:.1f} ms/frame")
    print(f"through the filter (get_frame, linear): {filter_seconds / len(frames) * 1000:.1f} ms/frame")
    print(f"filter overhead: {(filter_seconds / engine_seconds - 1) * 100:+.1f}% of the engine step")


if __name__ == "__main__":
    main()
