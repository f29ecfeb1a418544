"""Initial noise modes: warped noise stays white standard Gaussian and moves with the flow."""

from __future__ import annotations

import math

import pytest
import torch

from streamdiffvsr.noise import chain_noise, initial_noise, latent_flow, noise_generator, warp_noise

H = W = 256


def affine_flow(h: int, w: int, *, shift=(0.0, 0.0), zoom: float = 1.0, angle: float = 0.0) -> torch.Tensor:
    """Flow current -> previous of a similarity about the centre: previous = zoom * R(angle) (p - c) + c + shift."""
    ys, xs = torch.meshgrid(torch.arange(h).double(), torch.arange(w).double(), indexing="ij")
    cx, cy = (w - 1) / 2, (h - 1) / 2
    c, s = zoom * math.cos(angle), zoom * math.sin(angle)
    px = c * (xs - cx) - s * (ys - cy) + cx + shift[0]
    py = s * (xs - cx) + c * (ys - cy) + cy + shift[1]
    return torch.stack([px - xs, py - ys]).float()[None]


FLOWS = {
    "translation": affine_flow(H, W, shift=(0.37, -1.61)),
    "zoom in": affine_flow(H, W, zoom=0.93),
    "zoom out": affine_flow(H, W, zoom=1.07),
    "rotation": affine_flow(H, W, angle=0.05),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FLOWS))
def test_warped_noise_stays_standard_normal(name: str) -> None:
    noise = initial_noise(0, 0, (1, 4, H, W))
    for index in range(1, 5):
        noise = warp_noise(noise, FLOWS[name], noise_generator(0, index, 1))
    x = noise.double()
    assert abs(x.mean().item()) < 0.01  # 262144 samples: the standard error is 0.002
    assert x.var().item() == pytest.approx(1.0, abs=0.02)
    for a, b in [(x[..., 1:, :], x[..., :-1, :]), (x[..., :, 1:], x[..., :, :-1])]:
        corr = ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())
        assert abs(corr.item()) < 0.01, f"neighbour correlation {corr.item():.4f}"
    # Not a trivial pass: the noise followed the motion (correlated with the first frame's, warped).
    again = warp_noise(noise, FLOWS[name], noise_generator(0, 9, 1))
    shifted = torch.nn.functional.grid_sample(
        noise, _grid(FLOWS[name]), mode="nearest", padding_mode="zeros", align_corners=True
    )
    inner = (..., slice(32, -32), slice(32, -32))
    assert torch.corrcoef(torch.stack([again[inner].flatten(), shifted[inner].flatten()]))[0, 1] > 0.3


def _grid(flow: torch.Tensor) -> torch.Tensor:
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    gx, gy = xs + flow[0, 0], ys + flow[0, 1]
    return torch.stack([2 * gx / (w - 1) - 1, 2 * gy / (h - 1) - 1], dim=-1)[None]


def test_integer_shift_moves_noise_exactly() -> None:
    noise = initial_noise(3, 0, (1, 4, 40, 48))
    # current(x) = previous(x + (3, -2))
    flow = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 40, 48)
    moved = warp_noise(noise, flow, noise_generator(3, 1, 1))
    torch.testing.assert_close(moved[..., 2:, :-3], noise[..., :-2, 3:], rtol=0, atol=1e-6)
    # Uncovered pixels (the right and top edges) are fresh draws, not zeros.
    assert moved[..., :, -3:].abs().min() > 0 and moved[..., :2, :].std() > 0.5


def test_modes() -> None:
    shape, flow = (1, 4, 16, 16), torch.zeros(1, 2, 16, 16)
    assert torch.equal(chain_noise("fresh", 5, 3, shape), initial_noise(5, 3, shape))
    assert torch.equal(chain_noise("fixed", 5, 3, shape), initial_noise(5, 0, shape))
    assert torch.equal(chain_noise("warped", 5, 0, shape), initial_noise(5, 0, shape))
    previous = initial_noise(5, 2, shape)
    warped = chain_noise("warped", 5, 3, shape, previous, flow)
    torch.testing.assert_close(warped, previous, rtol=0, atol=1e-6)  # zero motion: the noise stays put
    assert torch.equal(warped, chain_noise("warped", 5, 3, shape, previous, flow))
    with pytest.raises(ValueError, match="unknown noise mode"):
        chain_noise("frozen", 5, 3, shape)


def test_latent_flow_is_the_output_flow_on_the_latent_grid() -> None:
    hr = torch.tensor([8.0, -4.0]).view(1, 2, 1, 1).expand(1, 2, 64, 96)
    lr = latent_flow(hr)
    assert lr.shape == (1, 2, 16, 24)
    assert torch.equal(lr[0, :, 0, 0], torch.tensor([2.0, -1.0]))
