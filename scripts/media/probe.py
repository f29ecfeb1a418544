"""What the encoder needs to know about the input, read with ffprobe: size, frame rate and timestamps, colour
tags and HDR metadata, language/title tags."""

from __future__ import annotations

import bisect
import json
import statistics
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.settings.codecs import Hdr10

UNSPECIFIED = {None, "", "unknown", "unspecified", "reserved"}
INTERLACED = {"tt", "bb", "tb", "bt"}  # ffprobe's field orders other than progressive/unknown
REMUXED_ROUNDING = Fraction(1, 1000)  # seconds: Matroska's timestamp unit, kept by a remux into finer ticks


@dataclass(frozen=True)
class OtherStream:
    """A stream of the input beside its video that the encode copies: its index in the file, its kind
    (ffprobe's codec_type: audio, subtitle, attachment), its codec, and an attachment's file name."""

    index: int
    kind: str
    codec: str
    filename: str | None = None

    def describe(self) -> str:
        name = f" {self.filename!r}" if self.filename else ""
        return f"{self.kind} stream {self.index}{name} ({self.codec})"


OTHER_KINDS = ("audio", "subtitle", "attachment")


@dataclass(frozen=True)
class SourceInfo:
    """The video stream of the input: the first that is a movie (not cover art, not a one-frame picture)."""

    fps: Fraction
    time_base: Fraction | None
    color_primaries: str | None
    color_transfer: str | None
    language: str | None = None
    title: str | None = None
    width: int = 0
    height: int = 0
    pix_fmt: str | None = None
    color_space: str | None = None
    # Presentation times of the frames in order, in seconds from the first (empty when ffprobe gives none).
    timestamps: tuple[Fraction, ...] = ()
    # Seconds from the file's start (where ffmpeg's input -ss counts from) to the first video frame: > 0 when
    # audio starts first.
    video_start: Fraction = Fraction(0)
    r_frame_rate: Fraction | None = None
    # HDR10 static metadata, from the stream or its first frame (None: it has none).
    hdr10: Hdr10 | None = None
    # The shape of a pixel (e.g. 4:3 for 720x576 shown 16:9), None when square or unknown.
    sample_aspect_ratio: Fraction | None = None
    interlaced: bool = False  # fields, by the stream's field order (the filter sees frames)
    field_order: str | None = None  # ffprobe's: progressive, tt, bb, tb, bt (None: unknown)
    cover_art: int = 0  # attached pictures (cover art) in the file, which the encode does not carry
    rotation: int = 0  # degrees the player turns the picture by (its display matrix); the reader does too
    others: tuple[OtherStream, ...] = ()  # audio, subtitles, attachments, in the file's order
    truncated_at: int | None = None  # a truncated file: the frame from which it cannot be read
    track: int = 0  # the video's stream index in the file (what ffprobe and the source reader are given)
    # the file's other video tracks (not cover art), left out: still pictures (one frame) and later movies
    other_videos: tuple[OtherStream, ...] = ()
    several_videos: bool = False  # more than one video stream, cover art included: the reader must be told

    @property
    def stream(self) -> str:
        """ffprobe's and ffmpeg's specifier of the video stream."""
        return str(self.track)

    @property
    def attachments(self) -> tuple[OtherStream, ...]:
        return tuple(s for s in self.others if s.kind == "attachment")

    @property
    def frame_count(self) -> int | None:
        return len(self.timestamps) or None


def ffmpeg_url(path: Path) -> str:
    """An absolute ``file:`` URL: a name starting with '-' or holding ':' is never taken as an option/protocol."""
    return "file:" + str(path.absolute())


def run_ffprobe(ffprobe: str, args: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    """``ffprobe -v error ARGS file:PATH``; output decoded so that any file name (even non-UTF-8) survives."""
    return subprocess.run(
        [ffprobe, "-v", "error", *args, ffmpeg_url(path)],
        capture_output=True,
        encoding="utf-8",
        errors="surrogateescape",
        timeout=3600,
        check=False,
    )


def _fraction(text: str | None) -> Fraction | None:
    try:
        value = Fraction(text) if text else None
    except (ValueError, ZeroDivisionError):
        return None
    return value if value else None


def _seconds(text: str | None) -> Fraction:
    try:
        return Fraction(text) if text else Fraction(0)
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


def _aspect(text: str | None) -> Fraction | None:
    """ffprobe's "4:3" as a Fraction; square ("1:1") or unknown ("0:1", absent) as None."""
    value = _fraction((text or "").replace(":", "/"))
    return None if value in (None, 1) else value


def _rotation(video: dict) -> int:
    """The display matrix's rotation in degrees (0 when none)."""
    for data in video.get("side_data_list", []):
        if data.get("side_data_type") == "Display Matrix":
            return round(float(data.get("rotation", 0))) % 360
    return 0


def _tag(value: str | None) -> str | None:
    return None if value in UNSPECIFIED else value


def _ffprobe_json(path: Path, ffprobe: str, args: list[str], errors: list[str] | None = None) -> dict:
    """ffprobe's JSON answer; the lines it printed beside a success are added to ``errors`` when given."""
    try:
        result = run_ffprobe(ffprobe, [*args, "-of", "json"], path)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CliError(f"cannot run ffprobe ({exc})") from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise CliError(f"cannot read {path} as a video: {lines[-1] if lines else 'ffprobe failed'}")
    if errors is not None:
        errors += result.stderr.splitlines()
    return json.loads(result.stdout or "{}")


def _timestamps(
    path: Path, ffprobe: str, stream: str, time_base: Fraction | None
) -> tuple[tuple[Fraction, ...], int | None]:
    """Every video packet's pts in presentation order, in seconds from the first (a demux, no decoding), and
    where the file is truncated (the demuxer found a partial file) the frame from which it cannot be read."""
    errors: list[str] = []
    packets = _ffprobe_json(path, ffprobe, ["-select_streams", stream, "-show_entries", "packet=pts"], errors)
    ticks = sorted(
        int(p["pts"]) for p in packets.get("packets", []) if str(p.get("pts", "")).lstrip("-").isdigit()
    )
    truncated_at = _regular_run(ticks) if any("partial file" in line for line in errors) else None
    if time_base is None or not ticks:
        return (), truncated_at
    return tuple((tick - ticks[0]) * time_base for tick in ticks), truncated_at


def _regular_run(ticks: list[int]) -> int:
    """How many frames from the first come at the usual step (frames lost to a cut leave a gap after them)."""
    steps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    usual = statistics.median_low(steps) if steps else 0
    return next((k + 1 for k, step in enumerate(steps) if step > usual * 3 // 2), len(ticks))


def _mastering(data: dict) -> tuple[int, ...]:
    """ffprobe's mastering display metadata in the SEI's units (``Hdr10.mastering``): chromaticities in
    1/50000, luminance in 1/10000 cd/m2."""

    def units(key: str, scale: int) -> int:
        return round(Fraction(data[key]) * scale)

    xy = [units(f"{name}_{axis}", 50000) for name in ("green", "blue", "red", "white_point") for axis in "xy"]
    return (*xy, units("max_luminance", 10000), units("min_luminance", 10000))


def _hdr10(path: Path, ffprobe: str, video: dict) -> Hdr10 | None:
    """The mastering display and content light level from the stream's side data, else from its first frame's
    (one decode); None when it has neither."""
    side_data = list(video.get("side_data_list", []))
    if video.get("color_transfer") in ("smpte2084", "arib-std-b67"):
        first = _ffprobe_json(
            path,
            ffprobe,
            ["-select_streams", str(video.get("index", 0)), "-read_intervals", "%+#1", "-show_frames"],
        )
        for frame in first.get("frames", [])[:1]:
            side_data += frame.get("side_data_list", [])
    master = cll = None
    for data in side_data:
        kind = data.get("side_data_type")
        if (
            kind == "Mastering display metadata"
            and master is None
            and {"red_x", "max_luminance"} <= set(data)
        ):
            master = _mastering(data)
        elif kind == "Content light level metadata" and cll is None and "max_content" in data:
            cll = (int(data["max_content"]), int(data["max_average"]))
    return None if master is None and cll is None else Hdr10(master, cll)


def probe(path: Path, ffprobe: str) -> SourceInfo:
    """Probe ``path``; an unreadable or video-less file is a one-line CliError with ffprobe's reason."""
    info = _ffprobe_json(path, ffprobe, ["-show_streams", "-show_format"])
    streams = info.get("streams", [])
    pictures = [
        s for s in streams if s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic")
    ]
    videos = [s for s in streams if s.get("codec_type") == "video" and s not in pictures]
    if not videos:
        raise CliError(f"{path} has no video stream")
    frames = _packet_counts(path, ffprobe) if len(videos) > 1 else {}
    video = next((s for s in videos if frames.get(s.get("index"), 2) > 1), videos[0])
    fps = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate")) or Fraction(25)
    tags = {key.lower(): value for key, value in video.get("tags", {}).items()}
    time_base = _fraction(video.get("time_base"))
    hdr10 = _hdr10(path, ffprobe, video)
    track = int(video.get("index", 0))
    timestamps, truncated_at = _timestamps(path, ffprobe, str(track), time_base)
    file_start = _seconds(info.get("format", {}).get("start_time"))
    video_start = max(Fraction(0), _seconds(video.get("start_time")) - file_start)
    return SourceInfo(
        fps=fps,
        time_base=time_base,
        color_primaries=_tag(video.get("color_primaries")),
        color_transfer=_tag(video.get("color_transfer")),
        language=_tag(tags.get("language")),
        title=tags.get("title") or None,
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        pix_fmt=video.get("pix_fmt"),
        color_space=_tag(video.get("color_space")),
        timestamps=timestamps,
        r_frame_rate=_fraction(video.get("r_frame_rate")),
        hdr10=hdr10,
        video_start=video_start,
        sample_aspect_ratio=_aspect(video.get("sample_aspect_ratio")),
        interlaced=video.get("field_order") in INTERLACED,
        field_order=_tag(video.get("field_order")),
        cover_art=len(pictures),
        rotation=_rotation(video),
        others=tuple(_other_stream(s) for s in streams if s.get("codec_type") in OTHER_KINDS),
        truncated_at=truncated_at,
        track=track,
        other_videos=tuple(_other_stream(s, frames) for s in videos if s is not video),
        several_videos=len(videos) + len(pictures) > 1,
    )


def _packet_counts(path: Path, ffprobe: str) -> dict[int, int]:
    """How many packets (frames) each video stream has, by stream index (one demux of the video streams)."""
    packets = _ffprobe_json(path, ffprobe, ["-select_streams", "v", "-show_entries", "packet=stream_index"])
    counts: dict[int, int] = {}
    for packet in packets.get("packets", []):
        index = int(packet.get("stream_index", -1))
        counts[index] = counts.get(index, 0) + 1
    return counts


def _other_stream(stream: dict, frames: dict[int, int] | None = None) -> OtherStream:
    tags = {key.lower(): value for key, value in stream.get("tags", {}).items()}
    codec = stream.get("codec_name") or tags.get("mimetype") or "unknown codec"
    if frames is not None and frames.get(int(stream.get("index", 0)), 2) <= 1:
        codec += ", a still picture"
    return OtherStream(int(stream.get("index", 0)), stream["codec_type"], codec, tags.get("filename"))


@dataclass(frozen=True)
class SizeChange:
    """Where the video's frame size first changes: at ``frame`` (counted from 0), from ``before`` to ``after``."""

    frame: int
    before: tuple[int, int]
    after: tuple[int, int]


def first_size_change(path: Path, ffprobe: str, info: SourceInfo) -> SizeChange | None:
    """The first change of frame size in the video, from its keyframes alone (a new size needs one, and
    decoding only them is a fraction of a full decode); None if every keyframe has the first one's size."""
    frames = _ffprobe_json(
        path,
        ffprobe,
        ["-select_streams", info.stream, "-skip_frame", "nokey", "-show_entries", "frame=pts,width,height"],
    ).get("frames", [])
    sizes = [(int(f["pts"]) if str(f.get("pts", "")).lstrip("-").isdigit() else None,
              (int(f.get("width", 0)), int(f.get("height", 0)))) for f in frames]  # fmt: skip
    if not sizes:
        return None
    packets = _ffprobe_json(path, ffprobe, ["-select_streams", info.stream, "-show_entries", "packet=pts"])
    ticks = [int(p["pts"]) for p in packets.get("packets", []) if str(p.get("pts", "")).lstrip("-").isdigit()]
    origin = min(ticks, default=0)
    for (_, before), (pts, after) in zip(sizes, sizes[1:], strict=False):
        if after != before:
            seconds = None if pts is None or info.time_base is None else (pts - origin) * info.time_base
            frame = bisect.bisect_left(info.timestamps, seconds) if seconds is not None else 0
            return SizeChange(frame, before, after)
    return None


def frame_duration_range(info: SourceInfo) -> tuple[Fraction, Fraction] | None:
    """The shortest and longest frame duration if they differ by more than timestamp rounding (variable
    frame rate), else None. Rounding: one tick of the time base, plus the 1 ms of a Matroska source the file
    was remuxed from (Matroska's 1 ms makes 23.976 fps 41/42 ms; an mp4 remuxed from it keeps those times in
    its own finer ticks)."""
    times = info.timestamps
    if len(times) < 3 or info.time_base is None:
        return None
    durations = [b - a for a, b in zip(times, times[1:], strict=False)]
    mean = (times[-1] - times[0]) / len(durations)
    slack = info.time_base + REMUXED_ROUNDING + mean / 100
    if all(abs(d - mean) <= slack for d in durations):
        return None
    return min(durations), max(durations)
