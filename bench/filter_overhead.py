"""The VapourSynth filter's own overhead (frame<->tensor copies, caching, checkpoints, locking, scene detection)
against the engine step alone, on the same clip and settings, in one process; then the same filter between
prepare_source and size_output with nothing to do (the generated script's render path at the default geometry),
and what a final 2x resize of the model's output costs per frame.

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
from streamdiffvsr.vsfilter import prepare_source, size_output, stream_diffvsr


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
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating runs of the filter with and without"
    )
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

    def render(clip: vs.VideoNode, made: float = source_seconds) -> float:
        """Seconds for every frame of ``clip``, linear, less ``made`` (the cost of producing its source)."""
        start = time.perf_counter()
        for n in range(len(frames)):
            clip.get_frame(n)
        return time.perf_counter() - start - made

    def filtered(clip: vs.VideoNode) -> vs.VideoNode:
        return stream_diffvsr(clip, model=str(root), **settings)

    filtered(source_clip(core, frames)).get_frame(0)  # warm-up
    # the filter alone and the default geometry's render path (prepare_source: progressive, no crop; size_output
    # 4x), alternating so that the machine's drift falls on both
    filter_seconds = prepared_seconds = 0.0
    for _ in range(args.rounds):
        filter_seconds += render(filtered(source_clip(core, frames))) / args.rounds
        prepared = prepare_source(source_clip(core, frames))
        prepared_seconds += render(size_output(filtered(prepared))) / args.rounds

    # the final 2x resize of the model's output size, over 20 passes of the frames (a resize takes milliseconds)
    big = [cv2.resize(f.transpose(1, 2, 0), (4 * w, 4 * h)).transpose(2, 0, 1).copy() for f in frames]
    passes = 20
    resize_seconds = 0.0
    for _ in range(passes):
        made = render(source_clip(core, big), 0.0)
        resize_seconds += render(size_output(source_clip(core, big), "2x"), made) / passes

    print(
        f"# {platform.node()} | CPU | torch {torch.__version__} | vapoursynth {core.core_version.release_major}"
    )
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC | {' '.join(sys.argv)}")
    print(f"engine alone: {engine_seconds / len(frames) * 1000:.1f} ms/frame")
    print(f"through the filter (get_frame, linear): {filter_seconds / len(frames) * 1000:.1f} ms/frame")
    print(f"filter overhead: {(filter_seconds / engine_seconds - 1) * 100:+.1f}% of the engine step")
    print(
        f"prepare_source + filter + size_output, nothing to do: {prepared_seconds / len(frames) * 1000:.1f} ms/frame "
        f"({(prepared_seconds / filter_seconds - 1) * 100:+.1f}% against the filter alone)"
    )
    print(
        f"size_output 2x (lanczos, {4 * w}x{4 * h} -> {2 * w}x{2 * h} RGBS): "
        f"{resize_seconds / len(frames) * 1000:.1f} ms/frame ({resize_seconds / filter_seconds * 100:.2f}% of a frame through the filter)"
    )


if __name__ == "__main__":
    main()
