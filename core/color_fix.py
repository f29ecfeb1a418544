"""Colour correction of an emitted frame against its LR frame's bicubic upscale, as diffusion upscalers ship it
(StableSR's wavelet and AdaIN colour fixes): the model's detail over the source's colours. Applied to what a
stream emits only, never to its state (the chain stays the official recurrence)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .options import SCALE

WAVELET_LEVELS = 5
CUBIC_A = -0.75  # the cubic convolution kernel's parameter in PyTorch's (and OpenCV's) bicubic


def _cubic(x: float) -> float:
    x = abs(x)
    if x <= 1:
        return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1
    return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A if x < 2 else 0.0


def _phase_taps(scale: int) -> list[list[tuple[int, float]]]:
    """For each output phase p (output pixel scale * i + p), the (input offset from i, weight) of its four taps,
    with half-pixel centres (align_corners=False)."""
    taps = []
    for phase in range(scale):
        position = (phase + 0.5) / scale - 0.5
        base = math.floor(position)
        taps.append([(base + k, _cubic(position - base - k)) for k in range(-1, 3)])
    return taps


PHASE_TAPS = _phase_taps(SCALE)
_REACH = max(abs(offset) for phase in PHASE_TAPS for offset, _ in phase)


def _upscale_axis(image: torch.Tensor, axis: int) -> torch.Tensor:
    size = image.shape[axis]
    padded = F.pad(image, (_REACH, _REACH, 0, 0) if axis == -1 else (0, 0, _REACH, _REACH), mode="replicate")
    phases = []
    for taps in PHASE_TAPS:
        total = torch.zeros_like(image)
        for offset, weight in taps:
            total.add_(padded.narrow(axis, _REACH + offset, size), alpha=weight)
        phases.append(total)
    if axis == -1:  # (..., w, phase) -> (..., w * scale)
        return torch.stack(phases, -1).flatten(-2)
    return torch.stack(phases, -2).flatten(-3, -2)  # (..., h, phase, w) -> (..., h * scale, w)


def bicubic_upscale(image: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, h, w) upscaled SCALE times as ``F.interpolate(mode="bicubic")`` does it (within float
    rounding), as separable shifted sums per output phase: several times faster on the CPU."""
    return _upscale_axis(_upscale_axis(image, -1), -2)


def _binomial_blur(image: torch.Tensor, dilation: int) -> torch.Tensor:
    """The 3x3 binomial blur ([1, 2, 1] / 4 along each axis) with taps ``dilation`` pixels apart, edges
    replicated: separable, as shifted sums (a dilated depthwise convolution is many times slower on the CPU)."""
    for pad in ((dilation, dilation, 0, 0), (0, 0, dilation, dilation)):
        padded = F.pad(image, pad, mode="replicate")
        axis = -1 if pad[0] else -2
        size = image.shape[axis]
        image = padded.narrow(axis, 0, size) + padded.narrow(axis, 2 * dilation, size)
        image.add_(padded.narrow(axis, dilation, size), alpha=2).mul_(0.25)
    return image


def low_frequencies(image: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """What is left of ``image`` (N, C, H, W) after ``levels`` binomial blurs of growing dilation (1, 2, 4, ...):
    the lowest band of its a-trous wavelet decomposition (the sum of the others is ``image`` minus this)."""
    for level in range(levels):
        image = _binomial_blur(image, 2**level)
    return image


def high_frequencies(image: torch.Tensor) -> torch.Tensor:
    return image - low_frequencies(image)


def wavelet_fix(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``image``'s high frequencies over ``reference``'s low frequencies (StableSR's wavelet reconstruction; the
    decomposition is linear, so one of the difference serves both)."""
    return reference + high_frequencies(image - reference)


def adain_fix(image: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``image`` with each channel's mean and standard deviation made ``reference``'s (adaptive instance
    normalisation)."""
    mean, std = image.mean((2, 3), keepdim=True), image.std((2, 3), keepdim=True)
    ref_mean, ref_std = reference.mean((2, 3), keepdim=True), reference.std((2, 3), keepdim=True)
    return (image - mean) / (std + eps) * ref_std + ref_mean


LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # BT.601's; any matrix's sum to 1, which is all luma_fix relies on


def luma_fix(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``reference``'s colour with ``image``'s luma detail: the wavelet fix on luma alone, its change added to
    R, G and B alike, which leaves the colour-difference signals (B - Y, R - Y, of any matrix) the reference's."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return reference + high_frequencies(((image - reference) * weights).sum(1, keepdim=True))


FIXES = {"wavelet": wavelet_fix, "adain": adain_fix, "luma": luma_fix}


def fix_colors(mode: str, image: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """``image`` (1, 3, SCALE h, SCALE w) in [0, 1], the output for ``lr`` (1, 3, h, w) in [0, 1], corrected by
    ``mode`` ("none": unchanged) against ``lr``'s bicubic upscale; clamped to [0, 1]."""
    if mode == "none":
        return image
    reference = bicubic_upscale(lr.float()).clamp_(0, 1)
    return FIXES[mode](image, reference).clamp_(0, 1)
