"""``streamdiffvsr encode``: check everything the user gave, then run the generated (or their) .vpy into x265."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

from streamdiffvsr.cli.arguments import absolute_path, whole
from streamdiffvsr.cli.console import notify, printable
from streamdiffvsr.cli.errors import CliError, EncodeError
from streamdiffvsr.cli.media.ffmpeg_cmd import (
    EncodeCommands,
    Trim,
    container_for,
    copied_kinds,
    streams_trial_command,
)
from streamdiffvsr.cli.media.probe import SourceInfo, first_size_change, frame_duration_range, probe
from streamdiffvsr.cli.media.tools import check_params, require_encode_tools
from streamdiffvsr.cli.media.vpy import generate_script
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
from streamdiffvsr.options import MIN_SIDE, SCALE, nvidia_gpu_present


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
    """--start/--end must name frames INPUT has (the script's own complaint would come after indexing)."""
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


def check_constant_size(source: Path, info: SourceInfo, ffprobe: str) -> None:
    """Refuse a video whose frame size changes midway (the filter takes one size), naming where. Asked only
    once the script has failed: finding it needs a decode of the keyframes, which a good input should not
    pay for."""
    change = first_size_change(source, ffprobe, info)
    if change is None:
        return
    (width, height), (new_width, new_height) = change.before, change.after
    command = (
        f"ffmpeg -i {shlex.quote(str(source))} -vf scale={width}:{height} -c:v libx264 -crf 10 -c:a copy -c:s copy "
        "SCALED.mkv"
    )
    raise CliError(
        f"INPUT changes its frame size at frame {change.frame} (from {width}x{height} to {new_width}x{new_height}); "
        f"the encode needs one size throughout: scale it first, e.g. `{command}`, and encode SCALED.mkv"
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


def attachment_notice(info: SourceInfo, muxer: str, output: Path) -> str | None:
    """Say which attachments (fonts of styled subtitles, ...) OUTPUT's container has no place for."""
    if not info.attachments or "attachment" in copied_kinds(muxer):
        return None
    names = ", ".join(s.filename or s.codec for s in info.attachments)
    return (
        f"INPUT's {len(info.attachments)} attachment(s) ({names}) cannot go into {output.suffix} and are left out "
        "of OUTPUT; write an .mkv OUTPUT to keep them"
    )


def check_streams_fit(source: Path, info: SourceInfo, muxer: str, output: Path, ffmpeg: str) -> None:
    """Every stream the encode copies from INPUT (audio, subtitles, attachments) must go into OUTPUT's
    container: ffmpeg writes their header alone (no packet, no file), so a refusal comes now, not at the join
    after the render. The streams that fail are named one by one."""
    copied = [s for s in info.others if s.kind in copied_kinds(muxer)]
    if not copied or _streams_fit(ffmpeg, streams_trial_command(source, muxer)):
        return
    failing = [s for s in copied if not _streams_fit(ffmpeg, streams_trial_command(source, muxer, s.index))]
    failing = failing or copied  # each fits alone, not together: name them all
    quoted = shlex.quote(str(source))
    if {s.kind for s in failing} == {"audio"}:
        fix = f"re-encode the audio first, e.g. `ffmpeg -i {quoted} -map 0 -c copy -c:a aac AAC.mkv`, and encode AAC.mkv"
    else:
        dropped = " ".join(f"-map -0:{s.index}" for s in failing)
        fix = f"leave them out first, e.g. `ffmpeg -i {quoted} -map 0 {dropped} -c copy FIXED.mkv`, and encode FIXED.mkv"
    mkv = "write an .mkv OUTPUT or " if muxer != "matroska" else ""
    raise CliError(
        f"INPUT's {', '.join(s.describe() for s in failing)} cannot be copied into {output.suffix}; {mkv}{fix}"
    )


def _streams_fit(ffmpeg: str, args: list[str]) -> bool:
    try:
        return subprocess.run([ffmpeg, *args], capture_output=True, check=False, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:  # a header cannot take this long: no verdict, the mux itself will tell
        return True


def check_frame_size(info: SourceInfo) -> None:
    """The model's smallest side, checked before a render worker loads anything (the filter would refuse it later)."""
    width, height = read_size(info)
    if min(width, height) < MIN_SIDE:
        read = f" (read as {width}x{height})" if (width, height) != (info.width, info.height) else ""
        raise CliError(
            f"INPUT is {info.width}x{info.height}{read}; the model needs each side to be at least {MIN_SIDE} "
            "pixels: upscale or pad it first (e.g. in your own script, passed with --vpy)"
        )


# A render worker's peak memory on the CPU by output frame size, measured with nano by bench/frame_memory.py
# (BENCHMARKS.md, 0.05 to 59 million output pixels): WORKER_BASE_MIB (Python, torch, VapourSynth, the model),
# plus MIB_PER_MPX per million output pixels up to KNEE_MPX and LARGE_MIB_PER_MPX beyond (the CPU's strips
# cap the full-size convolutions' temporaries there). It is above every measurement, by 300 MiB at most.
WORKER_BASE_MIB = 1150
MIB_PER_MPX = 175
KNEE_MPX = 33
LARGE_MIB_PER_MPX = 82
MEMORY_NOTICE_MIB = 4096  # from here on the encode says what it will need


def worker_memory_mib(output_pixels: int) -> float:
    """The rule above: a CPU render worker's peak memory for output frames of ``output_pixels`` pixels. A
    larger model than nano needs more (its weights, wider layers): for it this is a floor."""
    mpx = output_pixels / 1e6
    return WORKER_BASE_MIB + MIB_PER_MPX * min(mpx, KNEE_MPX) + LARGE_MIB_PER_MPX * max(mpx - KNEE_MPX, 0)


def output_pixels_within(mib: float) -> float:
    """The largest output frame (pixels) whose worker fits in ``mib`` by the rule (its inverse)."""
    small = (mib - WORKER_BASE_MIB) / MIB_PER_MPX
    if small <= KNEE_MPX:
        return max(0.0, small) * 1e6
    return (KNEE_MPX + (mib - worker_memory_mib(KNEE_MPX * 10**6)) / LARGE_MIB_PER_MPX) * 1e6


def check_memory(source: Path, info: SourceInfo, parallel: Parallel, notify) -> None:
    """Before anything loads: say what the output frame size costs in memory on the CPU, and refuse what
    cannot fit this machine's memory (the workers of one machine together). Skipped where the networks run
    on a GPU (an NVIDIA GPU here, or a Ray cluster), whose memory this rule does not describe."""
    width, height = (SCALE * side for side in read_size(info))
    need = worker_memory_mib(width * height)
    if need < MEMORY_NOTICE_MIB or parallel.address is not None or nvidia_gpu_present():
        return
    workers = parallel.workers or 1
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    verb = "needs" if workers == 1 else "need"
    needs = f"OUTPUT frames are {width}x{height}: {_workers(workers)} on the CPU {verb} about {need / 1024:.1f} GiB"
    if workers > 1:
        needs += f" each ({need * workers / 1024:.1f} GiB together)"
    if need * workers <= total:
        notify(f"{needs}; this machine has {total / 1024:.1f} GiB")
        return
    room = output_pixels_within(total / workers)
    lines = max(MIN_SIDE, int(info.height * (room / (width * height)) ** 0.5) // 2 * 2)
    command = (
        f"ffmpeg -i {shlex.quote(str(source))} -vf scale=-2:{lines} -c:v libx264 -crf 10 -c:a copy -c:s copy "
        "SMALLER.mkv"
    )
    fewer = " (or use fewer --workers)" if workers > 1 else ""
    raise CliError(
        f"{needs}, more than this machine's {total / 1024:.1f} GiB of memory (measured with nano: {WORKER_BASE_MIB} "
        f"MiB + {MIB_PER_MPX} MiB per million output pixels up to {KNEE_MPX} million, {LARGE_MIB_PER_MPX} MiB per "
        "million beyond); render on a GPU, or make INPUT at most about "
        f"{lines} lines high first{fewer}, e.g. `{command}`, and encode SMALLER.mkv"
    )


def _workers(count: int) -> str:
    return "a render worker" if count == 1 else f"{count} render workers"


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


def check_flow_available(flow: str, model_root: Path, flow_weights: str | None) -> None:
    """RAFT's weights must be at hand before a render worker starts (else the script fails after indexing the source)."""
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
    check_params(tools.ffmpeg, codec, settings.section("encoder"))
    info = probe(source, tools.ffprobe)
    check_constant_rate(source, info)
    check_range_in_source(info, args.start, args.end)
    check_streams_fit(source, info, muxer, output, tools.ffmpeg)
    for notice in filter(
        None, [odd_size_notice(info), *stream_notices(info), attachment_notice(info, muxer, output)]
    ):
        notify(notice)
    if user_vpy is None:
        check_frame_size(info)
        check_memory(source, info, parallel, notify)
        if notice := codec.hdr10_notice(info.hdr10):  # a --vpy's output is its own: none of the source's
            notify(notice)

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
    script_text = generate_script(settings) if user_vpy is None else user_vpy.read_text(errors="replace")
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
    except EncodeError as exc:
        # The generated script fails on a frame size that changes: say where and what to do.
        if exc.side == "script" and user_vpy is None:
            check_constant_size(source, info, tools.ffprobe)
        raise
    finally:
        generated.unlink(missing_ok=True)
    print(printable(f"wrote {output}"), flush=True)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "encode",
        help="upscale a video 4x and encode it with x265 (audio, subtitles, chapters, attachments kept)",
        description="Upscale INPUT 4x with Stream-DiffVSR inside a VapourSynth script and encode it with x265 "
        "into OUTPUT (.mkv or .mp4), copying audio, subtitles, chapters, metadata and (.mkv) attachments from INPUT.",
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
