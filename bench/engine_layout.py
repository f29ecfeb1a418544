"""The engine's memory layout, step by step: networks NCHW (as the official pipeline runs them), channels_last,
and channels_last with full-resolution convolutions run in strips (the engine's CPU default; see
``streamdiffvsr.strips``), in one process on one model and the same frames.

    python bench/engine_layout.py                      # nano, 320x180 -> 1280x720, CPU
    python bench/engine_layout.py --model DIR --size 160x90 --device cuda

The variants alternate over --rounds; prints s/frame (median over frames, then over rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch

from streamdiffvsr import StreamDiffVSR
from streamdiffvsr.strips import default_strip_bytes

# name: (network memory layout, strips)
VARIANTS = {
    "NCHW": (torch.contiguous_format, False),
    "channels_last": (torch.channels_last, False),
    "channels_last + strips": (torch.channels_last, True),
}


def seconds_per_frame(
    engine: StreamDiffVSR, frames: list[torch.Tensor], layout: torch.memory_format, strips: bool
) -> float:
    c = engine.components
    for model in (c.unet, c.controlnet, c.vae):
        model.to(memory_format=layout)
    engine.strip_bytes = default_strip_bytes(engine.device) if strips else None
    stream = engine.stream()
    stream.step(frames[0])  # frame 0 has no guidance; frame 1 warms the guided path
    stream.step(frames[1])
    times = []
    for lr in frames[2:]:
        start = time.perf_counter()
        stream.step(lr)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nano")
    parser.add_argument("--size", default="320x180", help="LR WxH")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    engine = StreamDiffVSR.from_pretrained(args.model, device=args.device)
    torch.manual_seed(0)
    base = torch.rand(1, 3, h + 8, w + 8)
    frames = [base[..., i % 8 : i % 8 + h, :w].contiguous() for i in range(args.frames + 2)]
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, variant in VARIANTS.items():
            results[name].append(seconds_per_frame(engine, frames, *variant))
    print(
        f"# {args.model} {w}x{h} -> {4 * w}x{4 * h}, {args.device}, {args.threads} threads, torch "
        f"{torch.__version__}, {platform.machine()}, {datetime.date.today()}"
    )
    print("| variant | s/frame (median of rounds) | frames/s | vs NCHW |")
    print("|---|---|---|---|")
    first = None
    for name, values in results.items():
        s = statistics.median(values)
        first = first or s
        print(f"| {name} | {s:.3f} | {1 / s:.2f} | {s / first:.3f} |")


if __name__ == "__main__":
    main()
