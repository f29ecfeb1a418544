"""How much memory a CPU render worker needs for a frame size (the rule ``encode``'s memory check applies).

A render worker's peak memory on the CPU by output frame size, measured with nano by bench/frame_memory.py
(BENCHMARKS.md, 0.05 to 59 million output pixels): WORKER_BASE_MIB (Python, torch, VapourSynth, the model),
plus MIB_PER_MPX per million output pixels up to KNEE_MPX and LARGE_MIB_PER_MPX beyond (the CPU's strips
cap the full-size convolutions' temporaries there). It is above every measurement, by 300 MiB at most.
"""

from __future__ import annotations

WORKER_BASE_MIB = 1150
MIB_PER_MPX = 175
KNEE_MPX = 33
LARGE_MIB_PER_MPX = 82
MEMORY_NOTICE_MIB = 4096  # from here on the encode says what it will need


def worker_memory_mib(output_pixels: int) -> float:
    """The rule above: a CPU render worker's peak memory for output frames of ``output_pixels`` pixels. A
    larger model than nano needs more (its weights, wider layers): for it this is a floor."""
    mpx = output_pixels / 1e6
    return WORKER_BASE_MIB + MIB_PER_MPX * min(mpx, KNEE_MPX) + LARGE_MIB_PER_MPX * max(mpx - KNEE_MPX, 0)


def output_pixels_within(mib: float) -> float:
    """The largest output frame (pixels) whose worker fits in ``mib`` by the rule (its inverse)."""
    small = (mib - WORKER_BASE_MIB) / MIB_PER_MPX
    if small <= KNEE_MPX:
        return max(0.0, small) * 1e6
    return (KNEE_MPX + (mib - worker_memory_mib(KNEE_MPX * 10**6)) / LARGE_MIB_PER_MPX) * 1e6
