"""The engine's memory layout, before and after: networks NCHW (as the official pipeline runs them) against
channels_last (the engine's default), in one process on one model and the same frames.

    python bench/engine_layout.py                      # nano, 320x180 -> 1280x720, CPU
    python bench/engine_layout.py --model DIR --size 160x90 --device cuda

The two layouts alternate over --rounds; prints s/frame (median over frames, then over rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch

from streamdiffvsr import StreamDiffVSR

LAYOUTS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}


def seconds_per_frame(
    engine: StreamDiffVSR, frames: list[torch.Tensor], layout: torch.memory_format
) -> float:
    c = engine.components
    for model in (c.unet, c.controlnet, c.vae):
        model.to(memory_format=layout)
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
    results: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for _ in range(args.rounds):
        for name, layout in LAYOUTS.items():
            results[name].append(seconds_per_frame(engine, frames, layout))
    print(
        f"# {args.model} {w}x{h} -> {4 * w}x{4 * h}, {args.device}, {args.threads} threads, torch "
        f"{torch.__version__}, {platform.machine()}, {datetime.date.today()}"
    )
    print("| layout | s/frame (median of rounds) | frames/s | vs NCHW |")
    print("|---|---|---|---|")
    first = None
    for name, values in results.items():
        s = statistics.median(values)
        first = first or s
        print(f"| {name} | {s:.3f} | {1 / s:.2f} | {s / first:.3f} |")


if __name__ == "__main__":
    main()
