"""Joining the finished segments into OUTPUT without re-encoding (ffmpeg's concat demuxer, video copied) and
muxing audio, subtitles, chapters and metadata from the source, as the linear encode does."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

from streamdiffvsr.cli.errors import EncodeError
from streamdiffvsr.cli.segments.partials import NotCommitted, claim, verify_and_commit

TAIL_LINES = 15


def write_concat_list(path: Path, files: list[Path], frames: list[int], fps: Fraction) -> None:
    """An ffconcat list of ``files`` (in the list's own folder), each with its exact duration, so timestamps
    continue across the joins as in one stream."""
    claim(path)
    lines = ["ffconcat version 1.0"]
    for file, count in zip(files, frames, strict=True):
        lines += [f"file '{file.name}'", f"duration {float(count / fps):.9f}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def join(
    ffmpeg_args: list[str], ffprobe: str, partial: Path, output: Path, frames: int, overwrite: bool
) -> None:
    """Run the join command (it writes ``partial``), then ``verify_and_commit`` it as ``output`` with ``frames``
    video frames (without ``overwrite``, never over a file someone else created meanwhile)."""
    try:
        claim(partial)
        result = subprocess.run(ffmpeg_args, capture_output=True, text=True, errors="replace", check=False)
        tail = result.stderr.strip().splitlines()[-TAIL_LINES:]
        if result.returncode != 0:
            raise EncodeError("ffmpeg (join)", f"exit status {result.returncode}", tail)
        try:
            verify_and_commit(partial, output, ffprobe, frames, overwrite)
        except NotCommitted as exc:
            side, lines = ("ffmpeg (join)", tail) if exc.incomplete else ("the join", [])
            raise EncodeError(side, str(exc), lines) from None
    finally:
        partial.unlink(missing_ok=True)
