"""VapourSynth RGB frames <-> torch tensors, through host buffers that are allocated once and reused."""

from __future__ import annotations

import numpy as np
import torch
import vapoursynth as vs


def host_buffer(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A float32 CPU tensor; page-locked when the device is CUDA, so copies to and from it are fast."""
    return torch.empty(shape, dtype=torch.float32, pin_memory=device.type == "cuda")


class FrameReader:
    """RGB frame (any float format) -> (1, 3, h, w) float32 tensor on the device; the result is reused per call."""

    def __init__(self, width: int, height: int, device: torch.device) -> None:
        self.device = device
        self.host = host_buffer((1, 3, height, width), device)
        self.array = self.host.numpy()
        self.on_device: torch.Tensor | None = None
        self.copied: torch.cuda.Event | None = None
        if device.type == "cuda":
            self.on_device = torch.empty_like(self.host, device=device)
            self.copied = torch.cuda.Event()

    def __call__(self, frame: vs.VideoFrame) -> torch.Tensor:
        if self.copied is not None:
            self.copied.synchronize()  # the previous upload has left the host buffer
        for plane in range(3):
            np.copyto(self.array[0, plane], np.asarray(frame[plane]), casting="same_kind")
        if self.on_device is None:
            return self.host
        with torch.cuda.device(self.device):
            self.on_device.copy_(self.host, non_blocking=True)
            self.copied.record()
        return self.on_device


class Downloader:
    """Device -> host copies that overlap the next frame's compute: on CUDA each copy runs on a side stream
    into page-locked memory and returns an event to wait for before the host reads it; on the CPU a plain copy."""

    def __init__(self, device: torch.device) -> None:
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def copy(self, source: torch.Tensor, target: torch.Tensor) -> torch.cuda.Event | None:
        """Start copying ``source`` into the host tensor ``target``; returns the event that marks it done."""
        if self.stream is None or source.device.type != "cuda":
            target.copy_(source)
            return None
        self.stream.wait_stream(torch.cuda.current_stream(source.device))  # ``source`` is computed
        with torch.cuda.stream(self.stream):
            target.copy_(source, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        source.record_stream(self.stream)  # its memory is not reused before the copy has read it
        return done


def write_frame(image: torch.Tensor, frame: vs.VideoFrame) -> None:
    """Copy a (3, H, W) float32 CPU tensor into the planes of a writable RGB frame (RGBS or RGBH)."""
    array = image.numpy()
    for plane in range(3):
        np.copyto(np.asarray(frame[plane]), array[plane], casting="same_kind")
