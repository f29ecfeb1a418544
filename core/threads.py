"""The CPU thread counts a computation runs with: torch's intra-op threads and OpenCV's (DIS flow).

torch's CPU kernels round differently with another thread count, and torch keeps that count **per OS thread**:
a thread takes the count in force when it first runs torch and keeps it, whatever ``torch.set_num_threads``
says later in another thread. A host such as VapourSynth calls a filter on threads it made at any time, so a
filter that must be exact records the counts once and applies them around each step (``CpuThreads.applied``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuThreads:
    """torch's and OpenCV's CPU thread counts."""

    torch: int
    opencv: int

    @classmethod
    def current(cls) -> CpuThreads:
        """The counts in force on the calling thread."""
        import cv2
        import torch

        return cls(torch.get_num_threads(), cv2.getNumThreads())

    @classmethod
    def uniform(cls, count: int) -> CpuThreads:
        """The same count for both."""
        return cls(count, count)

    def apply(self) -> None:
        """Make these the counts of the calling thread (and the default of threads that start torch later)."""
        import cv2
        import torch

        if torch.get_num_threads() != self.torch:
            torch.set_num_threads(self.torch)
        if cv2.getNumThreads() != self.opencv:
            cv2.setNumThreads(self.opencv)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """These counts inside the block, on whatever thread runs it; the thread's own counts again after."""
        before = CpuThreads.current()
        self.apply()
        try:
            yield
        finally:
            before.apply()
