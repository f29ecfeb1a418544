"""Optical flow from the current LR frame to the previous one, delivered at output (HR) resolution.

``flow_scale`` is the factor the LR pair is bicubic-upscaled by before the flow network sees it: 4 is the
official configuration (flow at output resolution); 1 runs the network on the LR frames and scales the field
up (values times 4), which costs about 1/256 of RAFT's HR correlation volume.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import NotDownloadable
from .locate import RAFT_FILES, needs_pretrained_weights, raft_file
from .options import FLOW_BACKENDS, FLOW_SCALE_BOUNDS

RAFT_MIN_SIDE = 128
RAFT_MULTIPLE = 8
RAFT_UPDATES = 12


class FlowBackend(Protocol):
    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) images in [-1, 1] -> (1, 2, h, w) float32 flow in pixels, current -> previous."""


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a torch file loaded with ``weights_only=True`` (never unpickles code)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def pretrained_raft_file(variant: str) -> Path:
    """torchvision's pretrained weights of ``variant`` in the torch hub cache, downloaded (quietly) if missing;
    a ModelLoadError if they are not there and cannot be downloaded."""
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    url = {"raft_large": Raft_Large_Weights, "raft_small": Raft_Small_Weights}[variant].DEFAULT.url
    path = raft_file(variant)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the name ends in the first hex digits of the file's sha256
        torch.hub.download_url_to_file(
            url, str(path), hash_prefix=path.stem.rpartition("-")[2], progress=False
        )
    except Exception as exc:  # urllib and hash errors come in several types
        raise NotDownloadable(
            f"torchvision's pretrained {variant} weights are not cached and cannot be downloaded ({exc}); "
            f"pass flow_weights=PATH to a {variant} state dict, or use flow='dis'",
            str(path),
        ) from None
    return path


class RaftFlow:
    """torchvision RAFT in float32; pads (replicate) to >= 128 and a multiple of 8, crops the field back."""

    def __init__(self, variant: str, weights: str | os.PathLike | None, device: torch.device) -> None:
        from torchvision.models.optical_flow import raft_large, raft_small

        build = {"raft_large": raft_large, "raft_small": raft_small}[variant]
        model = build(weights=None)
        weights = pretrained_raft_file(variant) if needs_pretrained_weights(variant, weights) else weights
        model.load_state_dict(load_state_dict_file(weights))
        self.model = model.eval().requires_grad_(False).to(device=device, dtype=torch.float32)

    @torch.inference_mode()
    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        h, w = current.shape[-2:]
        pad_h = max(RAFT_MIN_SIDE, -(-h // RAFT_MULTIPLE) * RAFT_MULTIPLE) - h
        pad_w = max(RAFT_MIN_SIDE, -(-w // RAFT_MULTIPLE) * RAFT_MULTIPLE) - w
        pair = torch.cat([current, previous]).float()
        if pad_h or pad_w:
            pair = F.pad(pair, (0, pad_w, 0, pad_h), mode="replicate")
        flow = self.model(pair[:1], pair[1:], num_flow_updates=RAFT_UPDATES)[-1]
        return flow[..., :h, :w]


class DisFlow:
    """OpenCV DIS optical flow on the CPU: no weights, no GPU."""

    def __init__(self) -> None:
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    @staticmethod
    def _gray_u8(image: torch.Tensor) -> np.ndarray:
        rgb = ((image[0].float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).cpu().numpy()
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).round().astype(np.uint8))

    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        field = self.dis.calc(self._gray_u8(current), self._gray_u8(previous), None)
        return torch.from_numpy(field).permute(2, 0, 1)[None].to(current.device)


class ZeroFlow:
    """No motion estimate: the previous frame is used unaligned (still through the trained warp convention)."""

    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return current.new_zeros((1, 2, *current.shape[-2:]), dtype=torch.float32)


_raft_cache: dict[tuple[str, str | None, str], RaftFlow] = {}
_raft_lock = threading.Lock()


def make_flow_backend(name: str, weights: str | os.PathLike | None, device: torch.device) -> FlowBackend:
    """A flow backend; RAFT models are shared per (variant, weights, device) within the process."""
    if name in RAFT_FILES:
        key = (name, os.path.realpath(weights) if weights is not None else None, str(device))
        with _raft_lock:
            if key not in _raft_cache:
                _raft_cache[key] = RaftFlow(name, weights, device)
            return _raft_cache[key]
    if name == "dis":
        return DisFlow()
    if name == "none":
        return ZeroFlow()
    raise ValueError(f"unknown flow backend {name!r}; choose one of {', '.join(FLOW_BACKENDS)}")


class FlowEstimator:
    """Flow at output resolution (``upscale`` x the LR size) from a backend run at ``scale`` x the LR size."""

    def __init__(self, backend: FlowBackend, scale: float, upscale: int) -> None:
        if scale not in FLOW_SCALE_BOUNDS:
            raise ValueError(f"flow_scale must be in {FLOW_SCALE_BOUNDS.describe()}, got {scale}")
        self.backend = backend
        self.scale = scale
        self.upscale = upscale

    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """LR frames (1, 3, h, w) in [-1, 1] -> flow (1, 2, upscale*h, upscale*w), current -> previous."""
        h, w = current.shape[-2:]
        pair = torch.cat([current, previous]).float()
        if self.scale != 1:
            pair = F.interpolate(pair, scale_factor=self.scale, mode="bicubic")
        flow = self.backend(pair[:1], pair[1:]).float()
        out_h, out_w = h * self.upscale, w * self.upscale
        if flow.shape[-2:] != (out_h, out_w):
            factor = torch.tensor(
                [out_w / flow.shape[-1], out_h / flow.shape[-2]], device=flow.device, dtype=flow.dtype
            )
            flow = F.interpolate(flow, size=(out_h, out_w), mode="bilinear", align_corners=False)
            flow = flow * factor.view(1, 2, 1, 1)
        return flow
