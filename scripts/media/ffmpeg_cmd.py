"""The ffmpeg argument lists (run without a shell): y4m on stdin -> the video codec.

Video comes from the pipe (or, for a segmented encode, from the joined segments, copied); audio, subtitles,
attachments (Matroska), chapters and metadata come from the original input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.probe import SourceInfo, ffmpeg_url
from streamdiffvsr.cli.settings.codecs import CODECS

CONTAINERS = {".mkv": "matroska", ".mp4": "mp4"}


def container_for(output: Path) -> str:
    """The ffmpeg muxer for OUTPUT's extension; other extensions are a CliError."""
    muxer = CONTAINERS.get(output.suffix.lower())
    if muxer is None:
        raise CliError(f"OUTPUT must end in {' or '.join(CONTAINERS)} (got {output.name!r})")
    return muxer


@dataclass(frozen=True)
class Trim:
    """The input time range matching the encoded frames (for audio and subtitles), in seconds."""

    start: float
    duration: float | None


def _exact_timescale(info: SourceInfo) -> bool:
    """Whether the source's time base is a track timescale worth keeping (a frame lasts whole ticks of it).

    Matroska's fixed 1/1000 is not (23.976 fps would jitter); an mp4's 1/24000 or a TS's 1/90000 is.
    """
    tb = info.time_base
    return tb is not None and tb.numerator == 1 and (1 / (info.fps * tb)).denominator == 1


def video_options(encoder: dict[str, Any], info: SourceInfo, tag_colour: bool) -> dict[str, Any]:
    """The encoder options of the video stream (codec, rate, pixel format, the codec's parameter list); for the
    generated script's output also the source's colour tags, its HDR10 metadata (in the codec's own syntax) and
    the sample aspect ratio (4x both ways: the same shape)."""
    codec = CODECS[encoder["codec"]]
    options: dict[str, Any] = codec.options(encoder)
    if tag_colour:
        options.update(colour_tags(info))
        if (sar := info.sample_aspect_ratio) is not None:  # VapourSynth's y4m always says A0:0
            options["vf"] = f"setsar={sar.numerator}/{sar.denominator}"
    if params := codec.params(encoder, info.hdr10 if tag_colour else None):
        options[codec.params_option] = params
    return options


def colour_tags(info: SourceInfo) -> dict[str, str]:
    """The colour tags of what the generated script outputs: limited range, the source's matrix, primaries and
    transfer. Given to the encoder, and again to the join, which copies the segments: a codec that does not
    carry them in its own bitstream (ffv1) would otherwise lose them in the NUT segments."""
    tags = {"colorspace": output_matrix(info), "color_range": "tv"}
    if info.color_primaries:
        tags["color_primaries"] = info.color_primaries
    if info.color_transfer:
        tags["color_trc"] = info.color_transfer
    return tags


def output_matrix(info: SourceInfo) -> str:
    """The matrix the generated script outputs: the source's own if tagged (an HDR10 source stays BT.2020
    non-constant luminance), else BT.709. template.vpy makes the same choice from the _Matrix prop."""
    return info.color_space if info.color_space not in (None, "gbr") else "bt709"


def _append_options(command: list[str], options: dict[str, Any]) -> list[str]:
    for name, value in options.items():
        command += [f"-{name}", str(value)]
    return command


_COMMON = ["-hide_banner", "-nostats", "-loglevel", "warning", "-y"]


def segment_command(info: SourceInfo, target: Path, encoder: dict[str, Any], tag_colour: bool) -> list[str]:
    """ffmpeg's arguments (after the executable) encoding y4m from stdin into ``target``, a video-only
    NUT segment of a segmented encode (exact frame times, whatever the codec)."""
    command = list(_COMMON)
    command += ["-f", "yuv4mpegpipe", "-i", "pipe:0", "-map", "0:v:0"]
    options = {**video_options(encoder, info, tag_colour), "f": "nut"}
    return [*_append_options(command, options), ffmpeg_url(target)]


_MAP_LETTERS = {"audio": "a", "subtitle": "s", "attachment": "t"}  # ffprobe's codec_type -> ffmpeg's -map


def copied_kinds(muxer: str) -> tuple[str, ...]:
    """The kinds of the source's other streams the encode copies into ``muxer``: audio, subtitles, and in
    Matroska the attachments (fonts of styled subtitles; mp4 has no place for them)."""
    return ("audio", "subtitle", "attachment") if muxer == "matroska" else ("audio", "subtitle")


def other_stream_maps(source_input: int, muxer: str) -> list[str]:
    """The ``-map`` arguments of the source's ``copied_kinds`` streams (input ``source_input``)."""
    return [arg for kind in copied_kinds(muxer) for arg in ("-map", f"{source_input}:{_MAP_LETTERS[kind]}?")]


def other_stream_options(muxer: str) -> dict[str, str]:
    """How those streams are written: copied, subtitles turned into mp4's own text format in mp4
    (attachments are always copied)."""
    return {"c:a": "copy", "c:s": "mov_text" if muxer == "mp4" else "copy"}


def streams_trial_command(source: Path, muxer: str, stream: int | None = None) -> list[str]:
    """ffmpeg's arguments writing the source's other streams (or only its stream ``stream``) as the encode
    will, but no packet of them (``-t 0``) and into nothing: ffmpeg fails at the header if ``muxer`` cannot
    hold one of them, in a fraction of a second instead of after the render."""
    maps = other_stream_maps(0, muxer) if stream is None else ["-map", f"0:{stream}"]
    command = [*_COMMON, "-i", ffmpeg_url(source), *maps]
    return [*_append_options(command, {**other_stream_options(muxer), "t": "0", "f": muxer}), "/dev/null"]


def ffmpeg_command(
    source: Path,
    info: SourceInfo,
    target: Path,
    muxer: str,
    encoder: dict[str, Any],
    trim: Trim | None = None,
    tag_colour: bool = True,
    joined: Path | None = None,
) -> list[str]:
    """ffmpeg's arguments (after the executable) reading y4m from stdin and ``source`` for the other streams,
    writing ``target`` as ``muxer``.

    With ``joined`` (an ffconcat list of encoded segments) the video is copied from the segments instead.
    """
    command = list(_COMMON)
    if joined is None:
        command += ["-f", "yuv4mpegpipe", "-i", "pipe:0"]
        options = video_options(encoder, info, tag_colour)
    else:
        command += ["-f", "concat", "-safe", "0", "-i", ffmpeg_url(joined)]
        options = {"c:v": "copy", **(colour_tags(info) if tag_colour else {})}
    if trim is not None:
        command += ["-ss", f"{trim.start:.6f}"]
        if trim.duration is not None:
            command += ["-t", f"{trim.duration:.6f}"]
        # The input seek lands on the video keyframe before trim.start; a copied stream would keep the packets
        # from there (with times before the video's first frame) unless told to drop them.
        options.update({"copypriorss:a": "0", "copypriorss:s": "0"})
    command += ["-i", ffmpeg_url(source), "-map", "0:v:0", *other_stream_maps(1, muxer)]
    options.update(
        {
            **other_stream_options(muxer),
            "map_metadata": "1",
            "map_chapters": "1",
            "max_muxing_queue_size": "4096",
            "f": muxer,
        }
    )
    # The video's own tags: only language and title (the source's ENCODER, BPS, ... would be stale).
    if info.language:
        options["metadata:s:v:0"] = f"language={info.language}"
    if info.title:
        options["metadata:s:0"] = f"title={info.title}"  # the same stream: the video is mapped first
    if muxer == "mp4":
        options["movflags"] = "+faststart"
        if (tag := CODECS[encoder["codec"]].mp4_tag) is not None:
            options["tag:v"] = tag
        if _exact_timescale(info):
            options["video_track_timescale"] = str(info.time_base.denominator)
    _append_options(command, options)
    # Paths are plain str (a non-UTF-8 name arrives with surrogate escapes, and subprocess restores its bytes).
    return [*command, ffmpeg_url(target)]


@dataclass(frozen=True)
class EncodeCommands:
    """The ffmpeg arguments of one encode: straight into OUTPUT (``whole``), one video segment, and the join
    of the segments with the source's other streams."""

    source: Path
    info: SourceInfo
    muxer: str
    encoder: dict[str, Any]
    trim: Trim | None
    tag_colour: bool

    def whole(self, partial: Path) -> list[str]:
        return ffmpeg_command(
            self.source, self.info, partial, self.muxer, self.encoder, self.trim, self.tag_colour
        )

    def segment(self, partial: Path) -> list[str]:
        return segment_command(self.info, partial, self.encoder, self.tag_colour)

    def join(self, concat_list: Path, partial: Path) -> list[str]:
        return ffmpeg_command(self.source, self.info, partial, self.muxer, self.encoder, self.trim,
                              self.tag_colour, joined=concat_list)  # fmt: skip
