"""The colour correction of emitted frames (core/color_fix.py): what each fix keeps, and that a stream's state,
so the chain, is the model's own whatever the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from streamdiffvsr import StreamDiffVSR
from streamdiffvsr.color_fix import (
    LUMA_WEIGHTS,
    adain_fix,
    bicubic_upscale,
    fix_colors,
    low_frequencies,
    luma_fix,
    wavelet_fix,
)
from streamdiffvsr.options import COLOR_FIXES, SCALE


def smooth_image(height: int = 64, width: int = 96, seed: int = 0) -> torch.Tensor:
    """A colourful image of low frequencies only (a random field blurred), in [0.2, 0.8]."""
    field = torch.rand(1, 3, height // 8, width // 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(field, size=(height, width), mode="bilinear", align_corners=False) * 0.6 + 0.2


def checkerboard(height: int = 64, width: int = 96, amplitude: float = 0.05) -> torch.Tensor:
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    return (((rows + cols) % 2) * 2 - 1).float().expand(1, 3, height, width) * amplitude


def test_the_wavelet_fix_removes_a_colour_cast_and_keeps_the_detail() -> None:
    reference = smooth_image()
    cast = torch.tensor([0.0, -0.05, 0.12]).view(1, 3, 1, 1)  # bluer, less green: the model's drift
    detail = checkerboard()
    fixed = wavelet_fix(reference + cast + detail, reference)
    assert torch.allclose(
        fixed - detail, reference, atol=2e-3
    )  # the cast gone, to within the blur of the detail
    assert torch.allclose(wavelet_fix(reference + cast, reference), reference, atol=1e-5)
    assert torch.allclose(low_frequencies(detail), torch.zeros_like(detail), atol=2e-3)


def test_the_adain_fix_takes_each_channels_mean_and_spread_from_the_reference() -> None:
    reference, image = smooth_image(seed=1), smooth_image(seed=2) * 0.5 + 0.3
    fixed = adain_fix(image, reference)
    assert torch.allclose(fixed.mean((2, 3)), reference.mean((2, 3)), atol=1e-5)
    assert torch.allclose(fixed.std((2, 3)), reference.std((2, 3)), atol=1e-4)


def test_the_luma_fix_keeps_the_references_colour_and_the_images_luma_detail() -> None:
    reference = smooth_image(seed=3)
    detail = checkerboard() * torch.tensor([1.0, -0.5, 0.8]).view(1, 3, 1, 1)  # detail with its own colour
    fixed = luma_fix(reference + torch.tensor([0.1, -0.05, 0.0]).view(1, 3, 1, 1) + detail, reference)
    weights = torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)

    def luma(image: torch.Tensor) -> torch.Tensor:
        return (image * weights).sum(1, keepdim=True)

    assert torch.allclose(fixed - luma(fixed), reference - luma(reference), atol=1e-5)  # B-Y, R-Y, G-Y
    assert torch.allclose(luma(fixed) - luma(reference), luma(detail), atol=2e-3)


def test_the_reference_is_torchs_bicubic_upscale() -> None:
    lr = torch.rand(1, 3, 18, 27, generator=torch.Generator().manual_seed(4))
    expected = F.interpolate(lr, scale_factor=SCALE, mode="bicubic")
    assert torch.allclose(bicubic_upscale(lr), expected, atol=1e-6)


def test_none_leaves_the_frame_and_the_others_compare_with_the_lr_frames_upscale() -> None:
    lr = smooth_image(16, 24)
    upscale = F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    image = (upscale + torch.tensor([0.1, 0.0, -0.1]).view(1, 3, 1, 1)).clamp(0, 1)
    assert fix_colors("none", image, lr) is image
    for mode in COLOR_FIXES[1:]:
        fixed = fix_colors(mode, image.clone(), lr)
        assert (fixed - upscale).abs().mean() < (image - upscale).abs().mean() / 4, mode
        assert fixed.min() >= 0 and fixed.max() <= 1


@pytest.mark.slow
def test_the_fix_changes_what_a_stream_emits_never_its_state(tiny_checkpoint: Path) -> None:
    """Three frames through one stream per fix, with the same noise: the emitted frames differ, the states (the
    previous LR and raw HR frames the next step reads) are bit for bit the same."""
    frames = [smooth_image(32, 48, seed) for seed in range(3)]
    latents = torch.randn(1, 4, 32, 48, generator=torch.Generator().manual_seed(0))
    emitted, states = {}, {}
    for mode in COLOR_FIXES:
        engine = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis", color_fix=mode)
        stream = engine.stream()
        emitted[mode] = [stream.step(frame, latents=latents) for frame in frames]
        states[mode] = stream.state_dict()
    for mode in COLOR_FIXES:
        assert states[mode].keys() == states["none"].keys()
        assert all(torch.equal(states[mode][key], states["none"][key]) for key in states[mode]), mode
        if mode != "none":
            assert not torch.equal(emitted[mode][-1], emitted["none"][-1]), mode
            assert torch.equal(emitted[mode][-1], fix_colors(mode, emitted["none"][-1], frames[-1]))
