"""The initial noise of each frame of a chain: fresh per frame, fixed per chain, or carried along the motion.

Warped noise follows "How I Warped Your Noise" (Chang et al., ICLR 2024) in its discrete form: each noise pixel
is split into k x k sub-pixels that are jointly iid N(0, 1/k^2) and sum to the pixel (a Brownian-bridge split),
every sub-pixel is moved along the flow to the pixel it lands in, and each target pixel is the sum of what
landed in it divided by the sum's standard deviation. Disjoint sums of iid Gaussians are iid: the result is
white standard Gaussian whatever the flow. Pixels nothing lands in (disocclusions, frame edges) get fresh noise.

Every draw is a pure function of (seed, chain position), made on the CPU, so the noise is the same on any
device and in any request order; sums run in fixed point, so they do not depend on summation order either.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .options import SCALE

SUBPIXELS = 4  # k: sub-pixels per side of a noise pixel
_FIXED_POINT = 2.0**-32  # resolution of the order-independent sums


def noise_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU generator that is a pure function of (seed, *key)."""
    state = np.random.SeedSequence([seed, *key]).generate_state(1, dtype=np.uint64)
    return torch.Generator(device="cpu").manual_seed(int(state[0] >> np.uint64(1)))


def initial_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Float32 CPU noise for frame ``index`` of a stream: a pure function of (seed, index), on any device."""
    return torch.randn(shape, generator=noise_generator(seed, index), dtype=torch.float32)


def latent_flow(flow: torch.Tensor) -> torch.Tensor:
    """Flow at output resolution (1, 2, 4h, 4w) -> on the latent grid (1, 2, h, w), in latent pixels."""
    return F.avg_pool2d(flow.float(), SCALE) / SCALE


def _sample(field: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``field`` (1, C, h, w) at pixel coordinates x, y (H', W'); clamped at the borders."""
    h, w = field.shape[-2:]
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)[None]
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_noise(previous: torch.Tensor, flow: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``previous`` noise (1, C, h, w), white N(0, 1), carried along ``flow`` (1, 2, h, w; current -> previous,
    in noise pixels): white N(0, 1) noise (1, C, h, w) for the current frame. ``generator`` draws the split
    and the noise of uncovered pixels."""
    _, c, h, w = previous.shape
    k = SUBPIXELS
    previous = previous.float().cpu()
    flow = flow.float().cpu()
    # Sub-pixels iid N(0, 1/k^2) given their sum: the pixel's share plus zero-mean residuals.
    residual = torch.randn((1, c, h * k, w * k), generator=generator)
    blocks = residual.view(1, c, h, k, w, k)
    blocks = blocks - blocks.mean(dim=(3, 5), keepdim=True)
    sub = (previous[:, :, :, None, :, None] / k**2 + blocks / k).reshape(1, c, h * k, w * k)
    # Where each sub-pixel centre p of the previous frame lands: q with q + flow(q) = p, by one fixed-point step
    # from q0 = p - flow(p) (the flow maps current pixels to previous ones).
    ys, xs = torch.meshgrid(
        (torch.arange(h * k, dtype=torch.float32) + 0.5) / k - 0.5,
        (torch.arange(w * k, dtype=torch.float32) + 0.5) / k - 0.5,
        indexing="ij",
    )
    f0 = _sample(flow, xs, ys)[0]
    f1 = _sample(flow, xs - f0[0], ys - f0[1])[0]
    tx, ty = torch.round(xs - f1[0]).long(), torch.round(ys - f1[1]).long()
    inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    target = (ty * w + tx)[inside]
    counts = torch.zeros(h * w, dtype=torch.int64).index_add_(0, target, torch.ones_like(target))
    fixed = torch.round(sub[0][:, inside] / _FIXED_POINT).long()
    sums = torch.zeros((c, h * w), dtype=torch.int64).scatter_add_(1, target.expand(c, -1), fixed)
    # A target pixel holds `count` sub-pixels of variance 1/k^2 each.
    scale = k / counts.clamp(min=1).double().sqrt()
    warped = (sums.double() * _FIXED_POINT * scale).float().view(1, c, h, w)
    fresh = torch.randn((1, c, h, w), generator=generator)
    return torch.where((counts > 0).view(1, 1, h, w), warped, fresh)


def chain_noise(
    mode: str,
    seed: int,
    index: int,
    shape: tuple[int, ...],
    previous: torch.Tensor | None = None,
    flow: torch.Tensor | None = None,
) -> torch.Tensor:
    """The initial noise of frame ``index`` of a chain (options.NOISE_MODES): "fresh" draws anew per frame,
    "fixed" repeats frame 0's, "warped" carries ``previous`` (the last frame's noise) along ``flow`` (current
    -> previous, on the noise grid); the first frame of a chain, or one without them, gets frame 0's draw."""
    if mode == "fresh":
        return initial_noise(seed, index, shape)
    if mode == "warped" and index > 0 and previous is not None and flow is not None:
        return warp_noise(previous, flow, noise_generator(seed, index, 1))
    if mode in ("fixed", "warped"):
        return initial_noise(seed, 0, shape)
    raise ValueError(f"unknown noise mode {mode!r}")
