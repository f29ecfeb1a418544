"""``streamdiffvsr encode``: check everything the user gave, then run the generated (or their) .vpy into x265."""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from fractions import Fraction
from pathlib import Path

from streamdiffvsr.cli.arguments import absolute_path
from streamdiffvsr.cli.console import notify, printable
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.ffmpeg_cmd import EncodeCommands, Trim, container_for
from streamdiffvsr.cli.media.probe import SourceInfo, frame_duration_range, probe
from streamdiffvsr.cli.media.tools import require_encode_tools, x265_param_errors
from streamdiffvsr.cli.media.vpy import render_script
from streamdiffvsr.cli.numbers import whole
from streamdiffvsr.cli.progress import Progress
from streamdiffvsr.cli.segments import orchestrator, speeds
from streamdiffvsr.cli.segments.orchestrator import Parallel, Request
from streamdiffvsr.cli.segments.partials import (
    GENERATED_SCRIPT_SUFFIX,
    check_names,
    claim,
    partial_path,
    remove_dead_leftovers,
)
from streamdiffvsr.cli.segments.plan import render_threads
from streamdiffvsr.cli.segments.ray_pool import check_cluster
from streamdiffvsr.cli.segments.speeds import Speed
from streamdiffvsr.cli.segments.worker import ScriptSpec
from streamdiffvsr.cli.settings.codecs import CODECS
from streamdiffvsr.cli.settings.models import add_model_argument, choose_model, steps_notice
from streamdiffvsr.cli.settings.presets import add_preset_arguments, load_settings
from streamdiffvsr.cli.settings.schema import KEYS_BY_NAME, Settings, find_key
from streamdiffvsr.options import MIN_SIDE


def check_input(path: Path) -> None:
    if not path.exists():
        raise CliError(f"INPUT {path} does not exist")
    if not path.is_file():
        raise CliError(f"INPUT {path} is not a file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise CliError(f"cannot read INPUT {path}: {exc.strerror or exc}") from None


def check_output(output: Path, source: Path, overwrite: bool) -> None:
    if not output.parent.is_dir():
        raise CliError(f"the folder of OUTPUT ({output.parent}) does not exist")
    if output.is_symlink() and not output.exists() and not overwrite:
        raise CliError(
            f"OUTPUT {output} is a link to {os.readlink(output)}, which does not exist; remove the link, or pass "
            "--overwrite to replace the link itself with the video"
        )
    if output.exists():
        if output.is_dir():
            raise CliError(f"OUTPUT {output} is a folder")
        if output.samefile(source):
            raise CliError("OUTPUT is the same file as INPUT")
        if not overwrite:
            raise CliError(f"OUTPUT {output} exists; pass --overwrite to replace it")


MIN_FREE_BYTES = 64 << 10  # below this the output folder is full for any video


def check_output_folder(folder: Path) -> None:
    """OUTPUT's folder must take a new file and have some free space, checked before any encoding."""
    try:
        fd, probe_path = tempfile.mkstemp(prefix=".streamdiffvsr-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe_path)
    except OSError as exc:
        raise CliError(f"cannot write in the folder of OUTPUT ({folder}): {exc.strerror or exc}") from None
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE_BYTES:
        raise CliError(f"the folder of OUTPUT ({folder}) is full ({free // 1024} KiB free); make room first")


def check_range(start: int | None, end: int | None) -> None:
    if end is not None and end < (start or 0):
        raise CliError(f"--end must be >= --start (got --start {start or 0} --end {end})")


def check_range_in_source(info: SourceInfo, start: int | None, end: int | None) -> None:
    """--start/--end must name frames INPUT has (vspipe's own complaint would come after indexing)."""
    count = info.frame_count
    if count is None:
        return
    for option, value in (("--start", start), ("--end", end)):
        if value is not None and value >= count:
            raise CliError(
                f"{option} {value} is beyond the end of INPUT: it has {count} frames (0 to {count - 1})"
            )


def check_constant_rate(source: Path, info: SourceInfo) -> None:
    """Refuse a variable frame rate: y4m carries one rate, so the encode would re-time the video off its audio."""
    durations = frame_duration_range(info)
    if durations is None:
        return
    shortest, longest = (f"{float(d) * 1000:.1f}" for d in durations)
    rate = info.r_frame_rate or info.fps
    command = f"ffmpeg -i {shlex.quote(str(source))} -fps_mode cfr -r {rate} -c:v libx264 -crf 10 -c:a copy -c:s copy CFR.mkv"
    raise CliError(
        f"INPUT has a variable frame rate (frames last {shortest} to {longest} ms), which the encode cannot "
        f"keep; make it constant first, e.g. `{command}`, and encode CFR.mkv"
    )


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


def stream_notices(info: SourceInfo) -> list[str]:
    """What the encode does not keep of INPUT's video: its fields, its display rotation, its cover art."""
    notices = []
    if info.interlaced:
        notices.append(
            "INPUT is interlaced; it is upscaled as progressive frames (combing stays): deinterlace it first, "
            "e.g. with QTGMC in your own script (--vpy) or `ffmpeg -i INPUT -vf bwdif=mode=send_frame ...`"
        )
    if info.rotation:
        notices.append(
            f"INPUT is shown turned by {info.rotation} degrees (its display matrix), which OUTPUT does not carry: "
            "it plays unturned; turn the frames in your own script (--vpy), e.g. with core.std.Transpose"
        )
    if info.cover_art:
        notices.append(f"INPUT's cover art ({info.cover_art} attached picture(s)) is not carried into OUTPUT")
    return notices


def check_frame_size(info: SourceInfo) -> None:
    """The model's smallest side, checked before vspipe loads anything (the filter would refuse it later)."""
    width, height = read_size(info)
    if min(width, height) < MIN_SIDE:
        read = f" (read as {width}x{height})" if (width, height) != (info.width, info.height) else ""
        raise CliError(
            f"INPUT is {info.width}x{info.height}{read}; the model needs each side to be at least {MIN_SIDE} "
            "pixels: upscale or pad it first (e.g. in your own script, passed with --vpy)"
        )


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


def check_x265_params(ffmpeg: str, params: str | None) -> None:
    if params and (errors := x265_param_errors(ffmpeg, params)):
        raise CliError(f"encoder.x265_params {params!r}: {'; '.join(errors)} (see `x265 --fullhelp`)")


def check_flow_available(flow: str, model_root: Path, flow_weights: str | None) -> None:
    """RAFT's weights must be at hand before vspipe starts (else the script fails after indexing the source)."""
    from streamdiffvsr.locate import RAFT_FILES, raft_file, resolve_flow

    flow, weights = resolve_flow(model_root, flow, flow_weights)
    if flow not in RAFT_FILES or weights is not None or raft_file(flow).is_file():
        return
    raise CliError(
        f"flow {flow} needs torchvision's pretrained weights, which are not cached ({raft_file(flow)}); run "
        f"`streamdiffvsr download --flow {flow}` once where there is network, or pass "
        "--set engine.flow_weights=FILE, or use --set engine.flow=dis"
    )


def check_flow_weights(settings: Settings) -> str | None:
    path = settings["flow_weights"]
    if path is None:
        return None
    if not Path(path).is_file():
        raise CliError(f"engine.flow_weights {path} is not a file")
    return path


def _ignored_engine_overrides(settings: Settings) -> list[str]:
    names = (find_key(item.partition("=")[0].strip()).name for item in settings.overrides)
    return [name for name in names if KEYS_BY_NAME[name].section == "engine"]


def parallel_from(args: argparse.Namespace) -> Parallel:
    """--workers / --ray (or $RAY_ADDRESS when neither is given): where segments run."""
    if args.ray is not None and args.workers is not None:
        raise CliError("--workers and --ray exclude each other: --ray runs one worker per GPU of the cluster")
    address = args.ray or (os.environ.get("RAY_ADDRESS") or None if args.workers is None else None)
    if address is not None:
        check_cluster(address)
    return Parallel(args.workers, address)


def run_encode(args: argparse.Namespace) -> int:
    settings = load_settings(args.preset, args.set)
    source, output = args.input, args.output
    check_input(source)
    muxer = container_for(output)
    codec = CODECS[settings["codec"]]
    if muxer not in codec.containers:
        raise CliError(f"encoder.codec {codec.name} cannot go into {output.suffix}; write an .mkv OUTPUT")
    parallel = parallel_from(args)
    check_names(output)
    check_output(output, source, args.overwrite)
    check_output_folder(output.parent)
    check_range(args.start, args.end)
    user_vpy = args.vpy
    if user_vpy is not None and not user_vpy.is_file():
        raise CliError(f"--vpy {user_vpy} is not a file")
    if removed := remove_dead_leftovers(output, [source, *filter(None, [user_vpy])]):
        notify(f"removed what an interrupted run left: {', '.join(path.name for path in removed)}")
    flow_weights = check_flow_weights(settings)
    tools = require_encode_tools(codec.encoder)
    if settings["codec"] == "x265":
        check_x265_params(tools.ffmpeg, settings["x265_params"])
    info = probe(source, tools.ffprobe)
    check_constant_rate(source, info)
    check_range_in_source(info, args.start, args.end)
    for notice in filter(None, [odd_size_notice(info), *stream_notices(info)]):
        notify(notice)
    if user_vpy is None:
        check_frame_size(info)

    script_args = {"src": str(source)}
    if user_vpy is None or args.model:
        choice = choose_model(args.model)
        notify(choice.notice)
        script_args["model"] = str(choice.path)
        if user_vpy is None:
            check_flow_available(settings["flow"], choice.path, flow_weights)
            if notice := steps_notice(settings["steps"], choice):
                notify(notice)
    if flow_weights is not None:
        script_args["flow_weights"] = flow_weights
    if user_vpy is not None and (ignored := _ignored_engine_overrides(settings)):
        notify(f"--vpy: the filter options come from your script; ignoring --set {', '.join(ignored)}")

    commands = EncodeCommands(source, info, muxer, settings.section("encoder"), source_trim(info, args.start, args.end),
                              tag_colour=user_vpy is None)  # fmt: skip
    script_text = render_script(settings) if user_vpy is None else user_vpy.read_text(errors="replace")
    generated = partial_path(output, GENERATED_SCRIPT_SUFFIX)  # hidden beside OUTPUT while it runs
    script = ScriptSpec(user_vpy or generated, script_args,
                        render_threads(settings["threads"]))  # fmt: skip
    request = Request(source, output, info, settings, script, script_text, args.start or 0, args.end,
                      args.overwrite, commands, tools)  # fmt: skip
    try:
        if user_vpy is None:
            claim(generated)
            generated.write_text(script_text, encoding="utf-8")
        if args.dry_run:

            def speed_on(device: str) -> Speed | None:  # what an earlier preview of the same measured, if any
                if user_vpy is not None:
                    return None
                size = read_size(info)
                return speeds.recorded(speeds.speed_key(settings, choice.path, size, device, script.threads))

            print(orchestrator.dry_run(request, parallel, notify, speed_on), flush=True)
            return 0
        orchestrator.run(request, parallel, args.restart, Progress(enabled=not args.quiet), notify)
    finally:
        generated.unlink(missing_ok=True)
    print(printable(f"wrote {output}"), flush=True)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "encode",
        help="upscale a video 4x and encode it with x265 (audio, subtitles, chapters kept)",
        description="Upscale INPUT 4x with Stream-DiffVSR inside a VapourSynth script and encode it with x265 "
        "into OUTPUT (.mkv or .mp4), copying audio, subtitles, chapters and metadata from INPUT.",
    )
    p.add_argument("input", metavar="INPUT", type=absolute_path, help="the source video")
    p.add_argument("output", metavar="OUTPUT", type=absolute_path, help="the result, .mkv or .mp4")
    add_preset_arguments(p)
    add_model_argument(p)
    p.add_argument(
        "--vpy",
        metavar="FILE",
        type=absolute_path,
        help="your own script instead of the generated one (gets --arg src=)",
    )
    p.add_argument(
        "--start",
        type=whole(0),
        metavar="N",
        help="first frame to encode: a frame number of INPUT, counted from 0 (default 0)",
    )
    p.add_argument(
        "--end", type=whole(0), metavar="N",
        help="last frame to encode, counted from 0 like --start and included (default: INPUT's last frame)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument(
        "--workers", type=whole(1), metavar="N",
        help="segments rendered at once on this machine, on a local Ray instance (default: one per CUDA device)",
    )  # fmt: skip
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the segments on the Ray cluster at ADDRESS (default: $RAY_ADDRESS)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard the finished segments of an earlier run and start over",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything, print the plan (segments, workers) and the estimate block; render nothing",
    )
    p.set_defaults(func=run_encode)
