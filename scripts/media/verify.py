"""Checking a written video before it is trusted: ffprobe must read it whole, with the expected frame count.

An exit status of 0 is not enough: ffmpeg 5.1 exits 0 after ``Error writing trailer ... No space left on
device``, leaving a truncated file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from streamdiffvsr.cli.media.probe import run_ffprobe


class IncompleteVideo(Exception):
    """The file is unreadable, or holds fewer or more frames than were sent; the message says which."""


def count_frames(path: Path, ffprobe: str) -> int:
    """The number of packets of the first video stream, read to the end; IncompleteVideo if ffprobe errs."""
    args = [
        "-select_streams",
        "v:0",
        "-count_packets",
        "-show_entries",
        "stream=nb_read_packets",
        "-of",
        "csv=p=0",
    ]
    try:
        result = run_ffprobe(ffprobe, args, path)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IncompleteVideo(f"ffprobe could not check it ({exc})") from None
    errors = result.stderr.strip().splitlines()
    count = result.stdout.strip().rstrip(",")
    if result.returncode != 0 or errors or not count.isdigit():
        reason = errors[-1] if errors else f"ffprobe exit status {result.returncode}"
        raise IncompleteVideo(f"ffprobe cannot read it whole ({reason})")
    return int(count)


def verify_frames(path: Path, ffprobe: str, expected: int) -> None:
    """Raise IncompleteVideo unless ``path`` reads whole and has exactly ``expected`` video frames."""
    found = count_frames(path, ffprobe)
    if found != expected:
        raise IncompleteVideo(f"it has {found} of the {expected} frames sent")
