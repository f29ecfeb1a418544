"""Parity: the streaming engine against a whole-sequence reference written the way the official pipeline works.

The reference below is deliberately written independently of the engine (functional TPM, its own warp, flows for
the whole clip at output resolution up front, the conditioning embedded at every step), using the same weights,
RAFT weights, prompt embedding and initial latents, in float32 on the CPU. What it pins down:
docs/algorithm.md, "What the parity test pins down".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
from safetensors.torch import load_file
from torchvision.models.optical_flow import raft_large

from streamdiffvsr import StreamDiffVSR, TemporalAutoencoderTiny
from streamdiffvsr.autoencoder_temporal_tiny import TemporalAutoencoderTinyBlock

from .test_engine import clip


def reference_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    _, _, h, w = image.shape
    grid_y, grid_x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    grid = torch.stack((grid_x, grid_y), 2).float()[None] + flow.permute(0, 2, 3, 1)
    vx = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
    vy = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(
        image, torch.stack((vx, vy), 3), mode="bilinear", padding_mode="zeros", align_corners=False
    )


def reference_block(
    block: TemporalAutoencoderTinyBlock, x: torch.Tensor, prev: torch.Tensor | None
) -> torch.Tensor:
    cur = block.conv(x)
    if prev is not None:
        b, c, h, w = cur.shape
        pool = torch.nn.AvgPool2d(4, 4)
        cp, pp = pool(cur), pool(prev)
        ph, pw = cp.shape[2:]
        out = block.temporal_processor(torch.cat([cp.view(b, c, -1), pp.view(b, c, -1)], dim=2))
        fused = block.alpha * out[:, :, : ph * pw].view(b, c, ph, pw) + (1 - block.alpha) * out[
            :, :, -ph * pw :
        ].view(b, c, ph, pw)
        cur = cur + 0.1 * F.interpolate(fused, size=(h, w), mode="bilinear", align_corners=False)
    return block.fuse(cur + block.skip(x))


def reference_features(vae: TemporalAutoencoderTiny, image: torch.Tensor) -> list[torch.Tensor]:
    feats, cur = [], image
    for module in vae.encoder.layers:
        cur = module(cur)
        if isinstance(module, TemporalAutoencoderTinyBlock):
            feats.append(cur)
    return feats


def reference_decode(
    vae: TemporalAutoencoderTiny, z: torch.Tensor, feats: list[torch.Tensor] | None
) -> torch.Tensor:
    x, k = torch.tanh(z / 3) * 3, 0
    for module in vae.decoder.layers:
        if isinstance(module, TemporalAutoencoderTinyBlock):
            x = reference_block(module, x, feats[k] if feats else None)
            k += 1
        else:
            x = module(x)
    return x * 2 - 1


@torch.inference_mode()
def reference_pipeline(root, frames: list[torch.Tensor], latents: list[torch.Tensor]) -> list[torch.Tensor]:
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet").eval()
    controlnet = ControlNetModel.from_pretrained(root, subfolder="controlnet").eval()
    vae = TemporalAutoencoderTiny.from_pretrained(root, subfolder="vae").eval()
    scheduler = DDIMScheduler.from_pretrained(root, subfolder="scheduler")
    scheduler.set_timesteps(4)
    embeds = load_file(root / "prompt_embeds.safetensors")["prompt_embeds"]
    raft = raft_large(weights=None)
    raft.load_state_dict(load_file(root / "flow" / "raft_large.safetensors"))
    raft.eval()

    lrs = [f * 2 - 1 for f in frames]
    ups = [F.interpolate(lr, scale_factor=4, mode="bicubic") for lr in lrs]
    flows = [None] + [raft(ups[i], ups[i - 1])[-1] for i in range(1, len(lrs))]
    outputs, previous = [], None
    for i, lr in enumerate(lrs):
        warped = reference_warp(previous, flows[i]) if previous is not None else None
        feats = reference_features(vae, warped)[::-1] if warped is not None else None
        z = latents[i]
        for t in scheduler.timesteps:
            inp = torch.cat([z, lr], dim=1)
            kwargs = {}
            if warped is not None:
                down, mid = controlnet(
                    inp,
                    t,
                    encoder_hidden_states=embeds,
                    controlnet_cond=warped,
                    conditioning_scale=1.0,
                    return_dict=False,
                )
                kwargs = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
            noise = unet(inp, t, encoder_hidden_states=embeds, **kwargs).sample
            z = scheduler.step(noise, t, z, eta=0.0).prev_sample
        image = reference_decode(vae, z / vae.config.scaling_factor, feats)
        previous = image
        outputs.append((image * 0.5 + 0.5).clamp(0, 1))
    return outputs


def test_engine_matches_official_algorithm_at_output_resolution_flow(tiny_checkpoint):
    frames = clip(3, 32, 32)  # HR 128x128: RAFT runs unpadded, as in the official pipeline
    generator = torch.Generator().manual_seed(123)
    latents = [torch.randn(1, 4, 32, 32, generator=generator) for _ in frames]
    expected = reference_pipeline(tiny_checkpoint, frames, latents)

    engine = StreamDiffVSR.from_pretrained(
        tiny_checkpoint, device="cpu", flow="raft_large", flow_scale=4, color_fix="none"
    )  # the official algorithm: no colour correction
    stream = engine.stream()
    for frame, lat, ref in zip(frames, latents, expected, strict=True):
        assert (stream.step(frame, latents=lat) - ref).abs().max().item() <= 1e-4
