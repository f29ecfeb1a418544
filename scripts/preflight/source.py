"""What the encode makes of INPUT's streams: the size VapourSynth reads, what OUTPUT cannot keep (said in
notices), whether the copied streams fit OUTPUT's container, and the time range of the encoded frames."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
from fractions import Fraction
from pathlib import Path

from streamdiffvsr.cli.media.ffmpeg_cmd import Trim, copied_kinds, streams_trial_command
from streamdiffvsr.cli.media.probe import OtherStream, SourceInfo
from streamdiffvsr.cli.settings.schema import Settings
from streamdiffvsr.geometry import DEFAULT_SIZE, Geometry, chroma_subsampling, parse_size, plan_geometry


def read_size(info: SourceInfo) -> tuple[int, int]:
    """INPUT's frame size as VapourSynth reads it: an odd size cannot be held in subsampled YUV, so the source
    reader drops the last column/row."""
    fmt = info.pix_fmt or ""
    drop_w = info.width % 2 if fmt.startswith(("yuv420", "yuvj420", "yuv422", "yuvj422", "nv")) else 0
    drop_h = info.height % 2 if fmt.startswith(("yuv420", "yuvj420", "nv12", "nv21")) else 0
    return info.width - drop_w, info.height - drop_h


def planned_geometry(info: SourceInfo, settings: Settings) -> Geometry:
    """The generated script's geometry as far as INPUT's ffprobe facts tell (``geometry.plan_geometry``; a
    GeometryError for a setting that cannot be applied). With crop=auto the script finds the borders: this plans
    the whole frame, and a height or WxH size, which depends on the cropped frame, is left to the script to check
    (its output has square pixels, as ``geometry.target_size`` gives it)."""
    width, height = read_size(info)
    auto = settings["crop"] == "auto"
    by_factor = parse_size(settings["size"]).factor is not None
    geometry = plan_geometry(
        width, height, info.sample_aspect_ratio, info.field_order, settings["deinterlace"],
        "none" if auto else settings["crop"], settings["size"] if by_factor or not auto else DEFAULT_SIZE,
        settings["kernel"], settings["method"], chroma_subsampling(info.pix_fmt),
    )  # fmt: skip
    return geometry if by_factor or not auto else dataclasses.replace(geometry, sar=Fraction(1))


def encoded_info(info: SourceInfo, geometry: Geometry | None) -> SourceInfo:
    """INPUT's facts as the video the script outputs has them: its frame rate (ivtc, double-rate deinterlacing)
    and sample aspect ratio (a height or WxH size: square pixels); the encoder's side reads these."""
    if geometry is None:
        return info
    sar = None if geometry.sar == 1 else geometry.sar
    rate = geometry.rate
    return dataclasses.replace(
        info, fps=info.fps * rate, r_frame_rate=info.r_frame_rate and info.r_frame_rate * rate,
        sample_aspect_ratio=sar, timestamps=(), interlaced=False,
    )  # fmt: skip


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
    """What the encode does not keep of INPUT's video: its other video streams, its cover art (its display
    rotation is kept: the source reader turns the frames upright; its fields are deinterlaced: input.deinterlace)."""
    notices = []
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


def script_range(start: int | None, end: int | None, rate: Fraction) -> tuple[int, int | None]:
    """INPUT's frames ``start``..``end`` (as --start/--end count them) as the frames of a script that runs at
    ``rate`` times INPUT's frame rate (``geometry.rate_change``: 4/5 after ivtc, 2 after double-rate
    deinterlacing): the script frames that start within those INPUT frames' time, at least one."""
    first = math.ceil((start or 0) * rate)
    if end is None:
        return first, None
    return first, max(first, math.ceil((end + 1) * rate) - 1)


def _time_at(info: SourceInfo, position: Fraction) -> Fraction:
    """Seconds from INPUT's first frame to ``position`` (in INPUT frames, fractional between two frames; past
    the last frame at the mean frame duration)."""
    times = info.timestamps or (Fraction(0),)
    step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1 / info.fps
    whole = math.floor(position)
    if whole < len(times) - 1:
        return times[whole] + (position - whole) * (times[whole + 1] - times[whole])
    return times[-1] + (position - len(times) + 1) * step


def source_trim(info: SourceInfo, first: int, last: int | None, rate: Fraction = Fraction(1)) -> Trim | None:
    """The time range of the script's frames ``first``..``last`` (all frames by default) for audio and subtitles,
    from INPUT's frames' own timestamps: script frame k starts at INPUT frame k / ``rate``. The audio of a file
    whose video starts late is cut to the video's first frame too."""
    if first == 0 and last is None and not info.video_start:
        return None
    begin = _time_at(info, first / rate)
    stop = None if last is None else _time_at(info, (last + 1) / rate)
    return Trim(float(info.video_start + begin), None if stop is None else float(stop - begin))
