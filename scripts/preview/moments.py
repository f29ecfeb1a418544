"""Which frames a preview shows: the user's ``--at`` list, or a handful spread over the video, each placed a
warm-up after a chain start and clear of the next one."""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from streamdiffvsr.cli.errors import CliError

DEFAULT_COUNT = 4
MAX_MOMENTS = 8
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_FRAME = re.compile(r"^\d+$", re.ASCII)
_SECONDS = re.compile(rf"^({_NUMBER})s$", re.ASCII)
_TIME = re.compile(rf"^(?:(\d+):)?(\d+):({_NUMBER})$", re.ASCII)


def parse_moment(text: str, fps: Fraction) -> int:
    """A frame number (``120``), seconds (``5s``, ``5.5s``) or a time (``1:05``, ``0:01:05.5``); exact
    arithmetic, so no spelling of a number (``1e400s``, ``nans``, ``-1s``) gets past as infinite or negative."""
    text = text.strip()
    try:
        if _FRAME.match(text):
            return int(text)
        if match := _SECONDS.match(text):
            return int(Fraction(match.group(1)) * fps)
        if match := _TIME.match(text):
            hours, minutes, rest = match.groups()
            if Fraction(rest) >= 60 or (hours is not None and int(minutes) >= 60):
                raise CliError(f"--at {text!r} is not a time: its minutes and seconds must be below 60")
            return int((int(hours or 0) * 3600 + int(minutes) * 60 + Fraction(rest)) * fps)
    except ValueError:  # more digits than Python converts
        pass
    raise CliError(f"--at: {text!r} is not a frame number (120), seconds (5.5s) or a time (1:05, 0:01:05.5)")


def parse_at(text: str, fps: Fraction, frames: int) -> list[int]:
    """The sorted, distinct frames of a comma-separated ``--at`` list, each checked against the video."""
    said: dict[int, str] = {}  # each frame as the user wrote it (the first spelling)
    for item in filter(str.strip, text.split(",")):
        said.setdefault(parse_moment(item, fps), item.strip())
    moments = sorted(said)
    if not moments:
        raise CliError("--at needs at least one frame number or time")
    if len(moments) > MAX_MOMENTS:
        raise CliError(f"--at names {len(moments)} moments; at most {MAX_MOMENTS} fit in one picture")
    check_in_video(moments, frames, said)
    return moments


def check_in_video(moments: list[int], frames: int, said: dict[int, str] | None = None) -> None:
    """The last of the sorted ``--at`` moments must be a frame of the video (named as the user wrote it,
    ``said``, with its frame number when that is another spelling)."""
    last = moments[-1]
    if last >= frames:
        text = (said or {}).get(last, str(last))
        named = text if text == str(last) else f"{text} (frame {last})"
        raise CliError(f"--at {named} is beyond the end of INPUT: it has {frames} frames (0 to {frames - 1})")


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
