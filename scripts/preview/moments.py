"""Which frames a preview shows: the user's ``--at`` list, or a handful spread over the video, each placed a
warm-up after a chain start and clear of the next one."""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from streamdiffvsr.cli.errors import CliError

DEFAULT_COUNT = 4
MAX_MOMENTS = 8
_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)$")


def parse_moment(text: str, fps: Fraction) -> int:
    """A frame number (``120``), seconds (``5s``, ``5.5s``) or a time (``1:05``, ``0:01:05.5``)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    seconds = text[:-1] if text.endswith("s") else None
    match = _TIME.match(text) if seconds is None and ":" in text else None
    try:
        if seconds is not None:
            value = float(seconds)
        elif match is not None:
            first, second, last = match.groups()
            hours, minutes = (first, second) if second is not None else (None, first)
            value = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(last)
        else:
            raise ValueError
    except ValueError:
        raise CliError(
            f"--at: {text!r} is not a frame number (120), seconds (5.5s) or a time (1:05, 0:01:05.5)"
        ) from None
    return int(value * fps)


def parse_at(text: str, fps: Fraction, frames: int) -> list[int]:
    """The sorted, distinct frames of a comma-separated ``--at`` list, each checked against the video."""
    moments = sorted({parse_moment(item, fps) for item in text.split(",") if item.strip()})
    if not moments:
        raise CliError("--at needs at least one frame number or time")
    if len(moments) > MAX_MOMENTS:
        raise CliError(f"--at names {len(moments)} moments; at most {MAX_MOMENTS} fit in one picture")
    check_in_video(moments, frames)
    return moments


def check_in_video(moments: list[int], frames: int) -> None:
    """The last of the sorted ``--at`` moments must be a frame of the video."""
    if moments[-1] >= frames:
        raise CliError(
            f"--at {moments[-1]} is beyond the end of INPUT: it has {frames} frames (0 to {frames - 1})"
        )


def spread(frames: int, count: int = DEFAULT_COUNT) -> list[int]:
    """``count`` frames spread evenly over the video (the middles of equal parts)."""
    return sorted({(2 * index + 1) * frames // (2 * count) for index in range(count)})


def place(
    candidate: int,
    frames: int,
    warmup: int,
    clear: int,
    chain_starts: Callable[[int, int], list[int]],
) -> int:
    """The frame nearest ``candidate`` that is ``warmup`` frames into a chain with ``clear`` more frames before
    the next chain start, looking a few warm-ups either side; ``candidate`` itself when none is."""
    reach = 4 * (warmup + clear)
    first, last = max(0, candidate - reach), min(frames - 1, candidate + reach)
    starts = chain_starts(first, last)
    if not starts:
        return candidate
    ends = [*starts[1:], last + 1]
    fits = [start + warmup for start, end in zip(starts, ends, strict=True) if start + warmup + clear <= end]
    return min(fits, key=lambda frame: abs(frame - candidate), default=candidate)
