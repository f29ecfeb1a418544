"""What the encoder needs to know about the input, read with ffprobe: frame rate, time base, colour tags."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from .errors import CliError

UNSPECIFIED = {None, "", "unknown", "unspecified", "reserved"}


@dataclass(frozen=True)
class SourceInfo:
    """The first video stream of the input: its rate, time base, colour tags and language/title tags."""

    fps: Fraction
    time_base: Fraction | None
    color_primaries: str | None
    color_transfer: str | None
    language: str | None = None
    title: str | None = None


def ffmpeg_url(path: Path) -> str:
    """An absolute ``file:`` URL: a name starting with '-' or holding ':' is never taken as an option/protocol."""
    return "file:" + str(path.absolute())


def _fraction(text: str | None) -> Fraction | None:
    try:
        value = Fraction(text) if text else None
    except (ValueError, ZeroDivisionError):
        return None
    return value if value else None


def _tag(value: str | None) -> str | None:
    return None if value in UNSPECIFIED else value


def probe(path: Path, ffprobe: str) -> SourceInfo:
    """Probe ``path``; an unreadable or video-less file is a one-line CliError with ffprobe's reason."""
    try:
        info = ffmpeg.probe(ffmpeg_url(path), cmd=ffprobe)
    except ffmpeg.Error as exc:
        lines = exc.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else "ffprobe failed"
        raise CliError(f"cannot read {path} as a video: {reason}") from None
    except OSError as exc:
        raise CliError(f"cannot run ffprobe ({exc})") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise CliError(f"{path} has no video stream")
    fps = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate")) or Fraction(25)
    tags = {key.lower(): value for key, value in video.get("tags", {}).items()}
    return SourceInfo(
        fps=fps,
        time_base=_fraction(video.get("time_base")),
        color_primaries=_tag(video.get("color_primaries")),
        color_transfer=_tag(video.get("color_transfer")),
        language=_tag(tags.get("language")),
        title=tags.get("title") or None,
    )
