"""Backward warping with the convention the Stream-DiffVSR weights were trained with."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at pixel grid + ``flow`` (B, 2, H, W; x then y, in pixels).

    The grid is normalised by ``W - 1`` / ``H - 1`` but sampled with ``align_corners=False``: that mixed
    convention is what the checkpoint was trained with, so zero flow is deliberately *not* the identity.
    Sampling runs in float32 whatever the image's precision: CPU grid_sample in bfloat16 returns NaNs.
    """
    _, _, h, w = image.shape
    xs, ys = pixel_grid(h, w, flow.device, flow.dtype)
    gx = 2 * (xs + flow[:, 0]) / max(w - 1, 1) - 1
    gy = 2 * (ys + flow[:, 1]) / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], dim=-1).float()
    sampled = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled.to(image.dtype)


@functools.lru_cache(maxsize=8)
def pixel_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel x and y coordinates (h, w), made once per frame size."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return xs, ys
