"""Evaluate the nano checkpoint on held-out clips and print a markdown table.

    python -m streamdiffvsr.training.eval_nano [--model nano] [--flow auto]

Held-out photos (never seen in training) are turned into clips by a moving crop window with known motion
(pan, zoom, small rotation); LR = bicubic 4x downscale, 8-bit. Reported, Y channel with the borders cropped:
PSNR/SSIM of the streaming model, of the same model run frame by frame (stream reset every frame, fresh noise
per frame) and of bicubic; the temporal warping error (MSE between consecutive outputs under the true motion, x1e3) and the
CPU speed for 320x180 -> 1280x720 through the engine (flow included).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from streamdiffvsr.engine import StreamDiffVSR
from streamdiffvsr.noise import initial_noise
from streamdiffvsr.training.nano_data import (
    HELDOUT_PHOTOS,
    MATE_DIR,
    PHOTOS_HELP,
    bicubic_up,
    load_photo,
    make_clip,
    psnr_y,
    ssim_y,
    warp_error,
)

EVAL_H, EVAL_W = 224, 320  # HR window; LR 56x80
FRAMES = 8
CLIPS_PER_PHOTO = 2


def run_stream(
    engine: StreamDiffVSR, frames: list[torch.Tensor], reset_every_frame: bool
) -> list[torch.Tensor]:
    """The frames through one stream; ``reset_every_frame``: without temporal guidance, but each frame still
    draws its own fresh noise (that of its place in the clip), as the official pipeline run per frame would."""
    stream = engine.stream()
    outs = []
    for k, lr in enumerate(frames):
        if reset_every_frame:
            stream.reset()
            outs.append(stream.step(lr, latents=initial_noise(engine.seed, k, (1, 4, *lr.shape[-2:]))))
        else:
            outs.append(stream.step(lr))
    return outs


def quality(engine: StreamDiffVSR, seed: int, mate_dir: Path) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    scores: dict[str, dict[str, list[float]]] = {
        m: {"psnr": [], "ssim": [], "warp": []} for m in ("stream", "frames", "bicubic", "gt")
    }
    for name in HELDOUT_PHOTOS:
        photo = load_photo(name, mate_dir)
        for _ in range(CLIPS_PER_PHOTO):
            clip = make_clip(photo, rng, EVAL_H, EVAL_W, FRAMES)
            outputs = {
                "stream": run_stream(engine, clip.lr, reset_every_frame=False),
                "frames": run_stream(engine, clip.lr, reset_every_frame=True),
                "bicubic": [bicubic_up(lr) for lr in clip.lr],
                "gt": clip.hr,
            }
            for method, outs in outputs.items():
                for k, (out, hr) in enumerate(zip(outs, clip.hr, strict=True)):
                    scores[method]["psnr"].append(psnr_y(out, hr))
                    scores[method]["ssim"].append(ssim_y(out, hr))
                    if k > 0:
                        scores[method]["warp"].append(1e3 * warp_error(out, outs[k - 1], clip.flows[k]))
    return {m: {k: float(np.mean(v)) for k, v in s.items()} for m, s in scores.items()}


def speed(engine: StreamDiffVSR, threads: int, mate_dir: Path, frames: int = 12) -> tuple[float, float]:
    """(frames/s from the median wall time per frame, CPU seconds per frame) streaming 320x180 -> 1280x720,
    after two warm-up frames (frame 0 has no guidance)."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(1)
    photo = load_photo(HELDOUT_PHOTOS[0], mate_dir)
    photo = torch.nn.functional.interpolate(photo[None], scale_factor=3, mode="bicubic")[0].clamp(0, 1)
    clip = make_clip(photo, rng, 720, 1280, frames + 2)
    stream = engine.stream()
    for lr in clip.lr[:2]:
        stream.step(lr)
    walls, cpu = [], time.process_time()
    for lr in clip.lr[2:]:
        start = time.perf_counter()
        stream.step(lr)
        walls.append(time.perf_counter() - start)
    return 1 / statistics.median(walls), (time.process_time() - cpu) / frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nano")
    parser.add_argument("--flow", default="auto")
    parser.add_argument("--photos", type=Path, default=MATE_DIR, help=PHOTOS_HELP)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the speed run (default 2)")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    engine = StreamDiffVSR.from_pretrained(args.model, device="cpu", flow=args.flow)
    q = quality(engine, args.seed, args.photos)
    n_clips = len(HELDOUT_PHOTOS) * CLIPS_PER_PHOTO
    print(
        f"Held-out: {len(HELDOUT_PHOTOS)} photos x {CLIPS_PER_PHOTO} clips x {FRAMES} frames, "
        f"LR {EVAL_W // 4}x{EVAL_H // 4} -> {EVAL_W}x{EVAL_H}; model {args.model!r}, flow {args.flow!r}, "
        f"{n_clips} clips\n"
    )
    print("| method | PSNR-Y (dB) | SSIM-Y | warping error (MSE x1e3) |")
    print("|---|---|---|---|")
    labels = {
        "stream": "nano, streaming",
        "frames": "nano, frame by frame (reset and fresh noise every frame)",
        "bicubic": "bicubic",
        "gt": "ground truth (reference)",
    }
    for method, label in labels.items():
        s = q[method]
        psnr = "-" if method == "gt" else f"{s['psnr']:.2f}"
        ssim = "-" if method == "gt" else f"{s['ssim']:.4f}"
        print(f"| {label} | {psnr} | {ssim} | {s['warp']:.3f} |")
    gain = q["stream"]["psnr"] - q["bicubic"]["psnr"]
    print(f"\nstreaming vs bicubic: {gain:+.2f} dB")
    if not args.no_speed:
        print(
            f"\nSpeed, 320x180 -> 1280x720, flow {args.flow!r}, CPU ({platform.processor() or platform.machine()}):\n"
        )
        print("| torch threads | frames/s (1 / median wall s per frame) | CPU s/frame |")
        print("|---|---|---|")
        for threads in sorted({1, args.threads}):
            fps, cpu = speed(engine, threads, args.photos)
            print(f"| {threads} | {fps:.2f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
