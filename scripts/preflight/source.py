"""What the encode makes of INPUT's streams: the size VapourSynth reads, what OUTPUT cannot keep (said in
notices), whether the copied streams fit OUTPUT's container, and the time range of the encoded frames."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

from streamdiffvsr.cli.media.ffmpeg_cmd import Trim, copied_kinds, streams_trial_command
from streamdiffvsr.cli.media.probe import OtherStream, SourceInfo


def read_size(info: SourceInfo) -> tuple[int, int]:
    """INPUT's frame size as VapourSynth reads it: an odd size cannot be held in subsampled YUV, so the source
    reader drops the last column/row."""
    fmt = info.pix_fmt or ""
    drop_w = info.width % 2 if fmt.startswith(("yuv420", "yuvj420", "yuv422", "yuvj422", "nv")) else 0
    drop_h = info.height % 2 if fmt.startswith(("yuv420", "yuvj420", "nv12", "nv21")) else 0
    return info.width - drop_w, info.height - drop_h


def odd_size_notice(info: SourceInfo) -> str | None:
    """Say that the source reader crops an odd size rather than crop silently."""
    width, height = read_size(info)
    if (width, height) == (info.width, info.height):
        return None
    dropped = " and ".join(
        side
        for side, drop in (("last column", width < info.width), ("last row", height < info.height))
        if drop
    )
    return (
        f"INPUT is {info.width}x{info.height} {info.pix_fmt}, odd for its subsampled chroma: VapourSynth reads it "
        f"as {width}x{height} ({dropped} dropped)"
    )


# ffmpeg's pixel formats with an alpha plane (pal8 is left out: its palette rarely uses its alpha)
ALPHA_FORMATS = re.compile(r"(yuva|gbrap|ya\d|ayuv|vuya|rgba|bgra|argb|abgr)")


def alpha_notice(info: SourceInfo) -> str | None:
    """Say that INPUT's alpha plane is dropped (y4m and the encoders carry colour alone)."""
    if not ALPHA_FORMATS.match(info.pix_fmt or ""):
        return None
    return (
        f"INPUT has an alpha (transparency) plane ({info.pix_fmt}); its colour planes are upscaled and the "
        "alpha is dropped"
    )


def stream_notices(info: SourceInfo) -> list[str]:
    """What the encode does not keep of INPUT's video: its fields, its other video streams, its cover art (its
    display rotation is kept: the source reader turns the frames upright)."""
    notices = []
    if info.interlaced:
        notices.append(
            "INPUT is interlaced; it is upscaled as progressive frames (combing stays): deinterlace it first, "
            "e.g. with QTGMC in your own script (--vpy) or `ffmpeg -i INPUT -vf bwdif=mode=send_frame ...`"
        )
    if info.other_videos:
        left_out = ", ".join(stream.describe() for stream in info.other_videos)
        notices.append(
            f"INPUT has {len(info.other_videos) + 1} video streams: video stream {info.track} is encoded (a --vpy "
            f"script reads it with core.bs.VideoSource(src, track=int(track))); left out: {left_out}"
        )
    if info.cover_art:
        notices.append(f"INPUT's cover art ({info.cover_art} attached picture(s)) is not carried into OUTPUT")
    return notices


def attachment_notice(info: SourceInfo, muxer: str, output: Path) -> str | None:
    """Say which attachments (fonts of styled subtitles, ...) OUTPUT's container has no place for."""
    if not info.attachments or "attachment" in copied_kinds(muxer):
        return None
    names = ", ".join(s.filename or s.codec for s in info.attachments)
    return (
        f"INPUT's {len(info.attachments)} attachment(s) ({names}) cannot go into {output.suffix} and are left out "
        "of OUTPUT; write an .mkv OUTPUT to keep them"
    )


def streams_not_fitting(source: Path, info: SourceInfo, muxer: str, ffmpeg: str) -> list[OtherStream]:
    """The streams the encode copies from INPUT (audio, subtitles, attachments) that OUTPUT's container cannot
    take: ffmpeg writes their header alone (no packet, no file), once for all, then one by one to name them
    (all of them where each fits alone but not together)."""
    copied = [s for s in info.others if s.kind in copied_kinds(muxer)]
    if not copied or _streams_fit(ffmpeg, streams_trial_command(source, muxer)):
        return []
    failing = [s for s in copied if not _streams_fit(ffmpeg, streams_trial_command(source, muxer, s.index))]
    return failing or copied


def _streams_fit(ffmpeg: str, args: list[str]) -> bool:
    try:
        return subprocess.run([ffmpeg, *args], capture_output=True, check=False, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:  # a header cannot take this long: no verdict, the mux itself will tell
        return True


def source_trim(info: SourceInfo, start: int | None, end: int | None) -> Trim | None:
    """The time range of frames start..end (all frames by default) for audio and subtitles, from the frames'
    own timestamps: the audio of a file whose video starts late is cut to the video's first frame too."""
    if start is None and end is None and not info.video_start:
        return None
    start = start or 0
    times = info.timestamps or tuple(Fraction(k, 1) / info.fps for k in range((end or start) + 2))
    stop = None
    if end is not None:
        stop = (
            times[end + 1]
            if end + 1 < len(times)
            else times[-1] + (times[-1] - times[0]) / max(len(times) - 1, 1)
        )
    begin = info.video_start + times[start]
    return Trim(float(begin), None if stop is None else float(stop - times[start]))
