"""Per-stage wall-clock accounting for benchmarks (off by default: then it costs one attribute check)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class StageTimer:
    """Accumulates seconds per named stage; synchronises its CUDA device around each stage so GPU work is
    attributed."""

    def __init__(self, device: torch.device) -> None:
        self.device = device if device.type == "cuda" else None  # the device to wait for (None: the CPU)
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.device is not None:
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device is not None:
                torch.cuda.synchronize(self.device)
            self.seconds[stage] += time.perf_counter() - start
