"""Train the "nano" Stream-DiffVSR checkpoint on the CPU: the official architecture at small widths.

    python -m streamdiffvsr.training.train_nano --out DIR

Stages (the paper's, in miniature), all on data made here from photos that packages ship (see nano_data):
1. the autoencoder on HR patches (reconstruction, latent channels 0-2 held to the LR frame);
2. the UNet as a 4-step DDIM denoiser conditioned on the LR patch, first on the usual v loss at the four
   timesteps, then through the whole rollout (pixel loss after the decoder, plus a latent loss); the decoder is
   fine-tuned with it;
3. the ControlNet (fed the previous output warped by DIS flow on the LR frames, as the engine runs it) and the
   autoencoder's temporal path on 3-frame clips with a temporal-consistency loss under the known motion, the UNet
   frozen.
Seeded: the same command on the same machine reproduces the checkpoint (about 67 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamdiffvsr.flow import FlowEstimator
from streamdiffvsr.training.nano_data import (
    MATE_DIR,
    PHOTOS_HELP,
    TRAIN_PHOTOS,
    Window,
    bicubic_up,
    downscale,
    exact_warp,
    load_photo,
    make_clip,
    psnr_y,
    render,
)
from streamdiffvsr.training.nano_model import NanoModels, save_checkpoint

NOTE = """# nano: a small Stream-DiffVSR checkpoint trained on a CPU

The official architecture (UNet2DConditionModel with 7 input channels, ControlNetModel, TemporalAutoencoderTiny,
DDIM v-prediction with 4 trailing steps) at small widths, trained by `python -m streamdiffvsr.training.train_nano`
on clips made from photos shipped by scikit-image and Debian's mate-backgrounds (bicubic 4x degradation).
A preview model for machines without the official weights. Trained with DIS flow on the LR frames, which
`flow="auto"` picks for it (model_index.json "_default_flow"; no RAFT weights needed).
Its prompt embedding is a fixed zero tensor (no text encoder); the UNet has no attention blocks.
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Patches:
    """Random HR patches (window scale, small rotation, flips) from the training photos."""

    def __init__(self, photos: list[torch.Tensor], size: int, rng: np.random.Generator) -> None:
        self.photos = photos
        self.size = size
        self.rng = rng
        # Sample photos in proportion to their area (big wallpapers hold more distinct patches).
        areas = np.array([p.shape[-1] * p.shape[-2] for p in photos], dtype=np.float64)
        self.weights = np.sqrt(areas) / np.sqrt(areas).sum()

    def photo(self) -> torch.Tensor:
        return self.photos[self.rng.choice(len(self.photos), p=self.weights)]

    def batch(self, n: int, size: int | None = None) -> torch.Tensor:
        size = size or self.size
        out = []
        for _ in range(n):
            photo = self.photo()
            h, w = photo.shape[-2:]
            scale = math.exp(self.rng.uniform(math.log(0.7), math.log(1.3)))
            angle = self.rng.uniform(-0.1, 0.1) if self.rng.random() < 0.3 else 0.0
            half = 0.75 * size * scale + 2
            cx, cy = (
                self.rng.uniform(half, max(half + 1, w - half)),
                self.rng.uniform(half, max(half + 1, h - half)),
            )
            patch = render(photo, Window(cx, cy, scale, angle), size, size)
            if self.rng.random() < 0.5:
                patch = patch.flip(-1)
            if self.rng.random() < 0.5:
                patch = patch.transpose(-1, -2)
            out.append(patch)
        return torch.cat(out)


# The UNet and the ControlNet use GroupNorm, whose statistics are taken over the whole frame: trained on one
# patch size only, they shift the colours of larger frames. Cycle the patch side (pixels per batch kept about
# constant) so that the statistics of any frame size look familiar.
SIDE_FACTORS = (1.0, 1.5, 2.0)


def sized(step: int, batch: int, patch: int) -> tuple[int, int]:
    """(batch, HR side) for this step: the side cycles through SIDE_FACTORS x patch (multiples of 16)."""
    factor = SIDE_FACTORS[step % len(SIDE_FACTORS)]
    side = int(round(patch * factor / 16)) * 16
    return max(1, round(batch / factor**2)), side


def cosine(step: int, total: int, warmup: int = 50) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# How strongly latent channels 0-2 are held to the LR frame: the decoder then learns, in effect, to upscale the LR
# frame (plus the hint in channel 3), which is what makes it beat bicubic within a CPU budget.
TIE_WEIGHT = 4.0


def stage1(models: NanoModels, data: Patches, steps: int, batch: int) -> None:
    """The autoencoder alone: HR patch -> latent (HR/4) -> HR patch."""
    vae = models.vae
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * cosine(step, steps)
        hr01 = data.batch(batch)
        hr = hr01 * 2 - 1
        z = vae.encode(hr)
        out = vae.decode(z)
        # Channels 0-2 of the latent are tied (softly) to the LR frame in [0, 1]: the UNet, which sees the LR
        # frame, then mostly adds detail to what it is given, and learns in a CPU budget.
        tie = F.l1_loss(z[:, :3], downscale(hr01))
        loss = F.l1_loss(out, hr) + TIE_WEIGHT * tie + 0.01 * z[:, 3:].pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            psnr = 10 * math.log10(4 / F.mse_loss(out.clamp(-1, 1), hr).item())
            log(
                f"stage 1 step {step}/{steps} loss {loss.item():.4f} recon PSNR {psnr:.2f} ({time.time() - start:.0f}s)"
            )


def stage2a(models: NanoModels, data: Patches, steps: int, batch: int, generator: torch.Generator) -> None:
    """The UNet on the usual v-prediction loss at the four timesteps it will run at (cheap: one call a step)."""
    unet, sched = models.unet, models.scheduler
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    alphas = sched.alphas_cumprod
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 2e-3 * cosine(step, steps)
        n, side = sized(step, batch, data.size)
        hr = data.batch(n, side)
        lr = downscale(hr) * 2 - 1
        with torch.no_grad():
            z0 = models.vae.encode(hr * 2 - 1)
        noise = torch.randn(z0.shape, generator=generator)
        t = models.timesteps[step % len(models.timesteps)]
        a = alphas[t]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * z0
        emb = models.prompt_embeds.expand(n, -1, -1)
        v = unet(torch.cat([zt, lr], dim=1), t, encoder_hidden_states=emb, return_dict=False)[0]
        # x0 error weighted like the v error: ||v - v*|| = ||x0 - x0*|| / sqrt(a) at small a, so use both.
        x0 = a.sqrt() * zt - (1 - a).sqrt() * v
        loss = F.mse_loss(v, target) + F.l1_loss(x0, z0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"stage 2a step {step}/{steps} t {t} loss {loss.item():.4f} ({time.time() - start:.0f}s)")


def rollout_loss(
    models: NanoModels, hr: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, float]:
    lr = downscale(hr) * 2 - 1
    target = hr * 2 - 1
    with torch.no_grad():
        z0 = models.vae.encode(target)
    noise = torch.randn(z0.shape, generator=generator)
    z = models.engine.denoise(lr, noise, None)
    out = models.engine.decode(z, None)
    loss = F.l1_loss(out, target) + 0.1 * F.l1_loss(z, z0)
    return loss, F.mse_loss(out.detach().clamp(-1, 1), target).item() / 4


def stage2(models: NanoModels, data: Patches, steps: int, batch: int, generator: torch.Generator) -> None:
    """The UNet through the 4-step rollout (t = 999, 749, 499, 249), with the decoder fine-tuned at a lower rate."""
    groups = [
        {"params": list(models.unet.parameters()), "base": 2e-3},
        {"params": list(models.vae.decoder.parameters()), "base": 1e-3},
    ]
    opt = torch.optim.Adam(groups, lr=1e-3)
    start = time.time()
    mse_sum, n = 0.0, 0
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = group["base"] * cosine(step, steps)
        hr = data.batch(*sized(step, batch, data.size))
        loss, mse = rollout_loss(models, hr, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models.unet.parameters(), 1.0)
        opt.step()
        mse_sum, n = mse_sum + mse, n + 1
        if step % 100 == 0 or step == steps - 1:
            bic = F.mse_loss(bicubic_up(downscale(hr)), hr).item()
            log(
                f"stage 2 step {step}/{steps} loss {loss.item():.4f} PSNR {10 * math.log10(1 / (mse_sum / n)):.2f} "
                f"(bicubic on this batch {10 * math.log10(1 / bic):.2f}) ({time.time() - start:.0f}s)"
            )
            mse_sum, n = 0.0, 0


TEMPORAL_WEIGHT = 0.5  # of the stage-3 loss between an output and its predecessor warped by the true motion


def estimated_flow(flow: FlowEstimator, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """The engine's flow (current -> previous, HR pixels) per clip of a batch of LR frames in [-1, 1]."""
    return torch.cat([flow(c[None], p[None]) for c, p in zip(current, previous, strict=True)])


def stage3(
    models: NanoModels,
    photos: list[torch.Tensor],
    steps: int,
    batch: int,
    size: int,
    rng: np.random.Generator,
    generator: torch.Generator,
) -> None:
    """ControlNet + the autoencoder's temporal path on 3-frame clips; the previous raw output is warped (the
    engine's warp convention) by DIS flow on the LR frames, as the engine runs it, and the temporal loss holds
    each output to its predecessor under the known motion."""
    models.restart_controlnet()
    models.unet.requires_grad_(False)
    engine = models.engine
    temporal = [
        p for name, p in models.vae.decoder.named_parameters() if "temporal" in name or "alpha" in name
    ]
    temporal_ids = {id(p) for p in temporal}
    decoder_rest = [p for p in models.vae.decoder.parameters() if id(p) not in temporal_ids]
    groups = [
        {"params": list(models.controlnet.parameters()), "base": 1e-3},
        {"params": temporal, "base": 1e-3},
        {"params": list(models.vae.encoder.parameters()), "base": 3e-4},
        {"params": decoder_rest, "base": 1e-4},
    ]
    opt = torch.optim.Adam(groups, lr=1e-3)
    frames = 3
    start = time.time()
    stats = np.zeros(3)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = group["base"] * cosine(step, steps)
        n, side = sized(step, batch, size)
        clips = [make_clip(photos[rng.integers(len(photos))], rng, side, side, frames) for _ in range(n)]
        hr = [torch.cat([c.hr[k] for c in clips]) * 2 - 1 for k in range(frames)]
        lr = [torch.cat([c.lr[k] for c in clips]) * 2 - 1 for k in range(frames)]
        # The ControlNet is fed the previous output warped by DIS flow on the LR frames, as the engine runs it
        # (errors included); the temporal loss below uses the exact motion.
        est = [None] + [estimated_flow(engine.flow, lr[k], lr[k - 1]) for k in range(1, frames)]
        flows = [None] + [torch.cat([c.flows[k] for c in clips]) for k in range(1, frames)]
        loss = 0.0
        prev = None
        for k in range(frames):
            noise = torch.randn((n, 4, side // 4, side // 4), generator=generator)
            if prev is None:
                with torch.no_grad():
                    z = engine.denoise(lr[k], noise, None)
                out = engine.decode(z, None)
            else:
                out = engine.generate(lr[k], noise, engine.warped_guidance(prev, est[k]))
                # Temporal consistency with the previous output under the true motion.
                warped, valid = exact_warp(prev, flows[k])
                loss = loss + TEMPORAL_WEIGHT * ((out - warped).abs() * valid).mean()
                stats[2] += F.mse_loss(out.detach().clamp(-1, 1), hr[k]).item() / 4
            loss = loss + F.l1_loss(out, hr[k])
            if k == 0:
                stats[1] += F.mse_loss(out.detach().clamp(-1, 1), hr[k]).item() / 4
            prev = out.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models.controlnet.parameters(), 1.0)
        opt.step()
        stats[0] += 1
        if step % 50 == 0 or step == steps - 1:
            n = stats[0]
            log(
                f"stage 3 step {step}/{steps} loss {loss.item():.4f} PSNR frame0 {10 * math.log10(n / stats[1]):.2f} "
                f"guided {10 * math.log10(n * (frames - 1) / stats[2]):.2f} ({time.time() - start:.0f}s)"
            )
            stats[:] = 0


@torch.no_grad()
def report(models: NanoModels, photos: list[torch.Tensor], seed: int) -> None:
    """PSNR on a fixed set of training-photo clips (a progress check, not the held-out evaluation)."""
    rng = np.random.default_rng(seed + 99)
    ours, bic, fbf = [], [], []
    for i in range(6):
        clip = make_clip(photos[i % len(photos)], rng, 128, 192, 3)
        prev = None
        for k in range(3):
            lr = clip.lr[k] * 2 - 1
            noise = torch.randn((1, 4, *lr.shape[-2:]), generator=torch.Generator().manual_seed(k))
            previous = (prev, models.engine.estimate_flow(lr, clip.lr[k - 1] * 2 - 1)) if k else None
            out = models.engine.upscale(lr, noise, previous)
            single = models.engine.upscale(lr, noise, None)
            prev = out
            ours.append(psnr_y((out + 1) / 2, clip.hr[k]))
            fbf.append(psnr_y((single + 1) / 2, clip.hr[k]))
            bic.append(psnr_y(bicubic_up(clip.lr[k]), clip.hr[k]))
    log(
        f"check (training photos): stream {np.mean(ours):.2f} frame-by-frame {np.mean(fbf):.2f} bicubic {np.mean(bic):.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    parser.add_argument("--photos", type=Path, default=MATE_DIR, help=PHOTOS_HELP)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--steps1", type=int, default=4000)
    parser.add_argument("--steps2a", type=int, default=1500)
    parser.add_argument("--steps2", type=int, default=10000)
    parser.add_argument("--steps3", type=int, default=800)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batch3", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128, help="HR patch side (a multiple of 16)")
    parser.add_argument("--resume", type=Path, help="a stage-N state file written by an earlier run")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    # Tiny weights/gradients can go subnormal, and subnormal arithmetic is many times slower on x86 CPUs.
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    log(f"loading {len(TRAIN_PHOTOS)} training photos")
    photos = [load_photo(name, args.photos) for name in TRAIN_PHOTOS]
    data = Patches(photos, args.patch, rng)
    models = NanoModels().to(memory_format=torch.channels_last)
    args.out.mkdir(parents=True, exist_ok=True)
    done = 0
    if args.resume:
        state = torch.load(args.resume, weights_only=False)
        done = state["stage"]
        if done >= 3:
            models.restart_controlnet()
        models.load_state_dict(state["models"])
        rng.bit_generator.state = state["rng"]
        generator.set_state(state["generator"])
        log(f"resumed after stage {done}")

    def checkpoint(stage: int) -> None:
        torch.save(
            {
                "stage": stage,
                "models": models.state_dict(),
                "rng": rng.bit_generator.state,
                "generator": generator.get_state(),
            },
            args.out / f"stage{stage}.pt",
        )

    start = time.time()
    if done < 1:
        stage1(models, data, args.steps1, args.batch)
        checkpoint(1)
    if done < 2:
        stage2a(models, data, args.steps2a, args.batch, generator)
        stage2(models, data, args.steps2, args.batch, generator)
        checkpoint(2)
        report(models, photos, args.seed)
    if done < 3:
        stage3(models, photos, args.steps3, args.batch3, args.patch, rng, generator)
        checkpoint(3)
    report(models, photos, args.seed)
    save_checkpoint(models, args.out, NOTE)
    for stage in (1, 2, 3):
        (args.out / f"stage{stage}.pt").unlink(missing_ok=True)
    log(f"wrote {args.out} in {time.time() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
