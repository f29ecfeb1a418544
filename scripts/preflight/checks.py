"""The checks before an ``encode`` or a ``preview`` renders, in the order they run.

Each check is one function below, registered with ``@check(COMMAND, ...)`` for the commands it applies to; they
run in the order of this module (``build.run_checks``). A check reads the ``Draft`` (the arguments and what
earlier checks found) and may add to it. A user's mistake is a ``CliError`` (one line naming the problem and the
fix); a notice goes to ``draft.notify``. Adding a check is one function here, at the place in the order where
what it needs is known. Nothing here imports torch, diffusers or VapourSynth.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.ffmpeg_cmd import container_for
from streamdiffvsr.cli.media.probe import SourceInfo, first_size_change, frame_duration_range, probe
from streamdiffvsr.cli.media.tools import check_params, require_encode_tools
from streamdiffvsr.cli.preflight.draft import ENCODE, PREVIEW, Draft
from streamdiffvsr.cli.preflight.memory import (
    KNEE_MPX,
    LARGE_MIB_PER_MPX,
    MEMORY_NOTICE_MIB,
    MIB_PER_MPX,
    WORKER_BASE_MIB,
    output_pixels_within,
    worker_memory_mib,
)
from streamdiffvsr.cli.preflight.request import Parallel
from streamdiffvsr.cli.preflight.source import (
    alpha_notice,
    attachment_notice,
    odd_size_notice,
    planned_geometry,
    read_size,
    script_range,
    stream_notices,
    streams_not_fitting,
)
from streamdiffvsr.cli.preview.moments import parse_at
from streamdiffvsr.cli.segments.manifest import check_folder
from streamdiffvsr.cli.segments.partials import check_names, work_folder
from streamdiffvsr.cli.segments.ray_pool import check_cluster
from streamdiffvsr.cli.settings.codecs import CODECS
from streamdiffvsr.cli.settings.models import choose_model, steps_notice
from streamdiffvsr.cli.settings.schema import KEYS_BY_NAME, find_key
from streamdiffvsr.geometry import GeometryError
from streamdiffvsr.options import MIN_SIDE, nvidia_gpu_present

MIN_FREE_BYTES = 64 << 10  # below this the output folder is full for any video

Check = Callable[[Draft], None]
CHECKS: list[tuple[Check, frozenset[str]]] = []


def check(*commands: str) -> Callable[[Check], Check]:
    """Register the decorated function as the next check of ``commands``."""

    def register(function: Check) -> Check:
        CHECKS.append((function, frozenset(commands)))
        return function

    return register


@check(ENCODE, PREVIEW)
def check_input(draft: Draft) -> None:
    path = draft.source
    if not path.exists():
        raise CliError(f"INPUT {path} does not exist")
    if not path.is_file():
        raise CliError(f"INPUT {path} is not a file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise CliError(f"cannot read INPUT {path}: {exc.strerror or exc}") from None


@check(ENCODE)
def check_container(draft: Draft) -> None:
    """OUTPUT's extension names a container the codec can go into."""
    draft.muxer = container_for(draft.output)
    codec = CODECS[draft.settings["codec"]]
    if draft.muxer not in codec.containers:
        raise CliError(
            f"encoder.codec {codec.name} cannot go into {draft.output.suffix}; write an .mkv OUTPUT"
        )


@check(PREVIEW)
def check_picture(draft: Draft) -> None:
    if draft.output.suffix.lower() != ".png":
        raise CliError(f"OUTPUT {draft.output} must be a .png picture")


@check(ENCODE)
def check_parallel(draft: Draft) -> None:
    """--workers / --ray (or $RAY_ADDRESS when neither is given): where segments run."""
    args = draft.args
    if args.ray is not None and args.workers is not None:
        raise CliError("--workers and --ray exclude each other: --ray runs one worker per GPU of the cluster")
    address = args.ray or (os.environ.get("RAY_ADDRESS") or None if args.workers is None else None)
    if address is not None:
        check_cluster(address)
    draft.parallel = Parallel(args.workers, address)


@check(ENCODE)
def check_output_name(draft: Draft) -> None:
    check_names(draft.output)
    check_folder(work_folder(draft.output.absolute()))


@check(ENCODE, PREVIEW)
def check_outputs(draft: Draft) -> None:
    for output in draft.outputs:
        if not output.parent.is_dir():
            raise CliError(f"the folder of OUTPUT ({output.parent}) does not exist")
        if output.is_symlink() and not output.exists() and not draft.args.overwrite:
            raise CliError(
                f"OUTPUT {output} is a link to {os.readlink(output)}, which does not exist; remove the link, or "
                "pass --overwrite to replace the link itself with the video"
            )
        if output.exists():
            if output.is_dir():
                raise CliError(f"OUTPUT {output} is a folder")
            if output.samefile(draft.source):
                raise CliError("OUTPUT is the same file as INPUT")
            if not draft.args.overwrite:
                raise CliError(f"OUTPUT {output} exists; pass --overwrite to replace it")


@check(ENCODE, PREVIEW)
def check_output_folder(draft: Draft) -> None:
    """OUTPUT's folder must take a new file and have some free space, checked before any encoding."""
    folder = draft.output.parent
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


@check(ENCODE)
def check_vpy(draft: Draft) -> None:
    if draft.vpy is not None and not draft.vpy.is_file():
        raise CliError(f"--vpy {draft.vpy} is not a file")


@check(ENCODE, PREVIEW)
def check_flow_weights(draft: Draft) -> None:
    path = draft.flow_weights
    if path is not None and not Path(path).is_file():
        raise CliError(f"engine.flow_weights {path} is not a file")


@check(ENCODE, PREVIEW)
def check_tools(draft: Draft) -> None:
    draft.tools = require_encode_tools(CODECS[draft.settings["codec"]].encoder)


@check(ENCODE, PREVIEW)
def check_encoder_params(draft: Draft) -> None:
    """The extra parameters each setting passes its encoder, as the encoder reads them."""
    assert draft.tools is not None
    for settings in draft.compared:
        check_params(draft.tools.ffmpeg, CODECS[settings["codec"]], settings.section("encoder"))


@check(ENCODE, PREVIEW)
def read_source(draft: Draft) -> None:
    assert draft.tools is not None
    draft.info = probe(draft.source, draft.tools.ffprobe)


@check(ENCODE, PREVIEW)
def check_complete(draft: Draft) -> None:
    """Refuse a truncated file (a copy cut short): the source reader fails on it, or reads fewer frames."""
    info = draft.info
    assert info is not None
    if info.truncated_at is None:
        return
    frames = info.truncated_at
    command = f"ffmpeg -i {shlex.quote(str(draft.source))} -map 0 -frames:v {frames} -c:v ffv1 -c:a copy -c:s copy READABLE.mkv"
    raise CliError(
        f"INPUT is truncated (a partial file): it cannot be read from frame {frames} on; save the frames "
        f"before that first, e.g. `{command}`, and encode READABLE.mkv"
    )


@check(ENCODE, PREVIEW)
def check_constant_rate(draft: Draft) -> None:
    """Refuse a variable frame rate: y4m carries one rate, so the encode would re-time the video off its audio."""
    info = draft.info
    assert info is not None
    durations = frame_duration_range(info)
    if durations is None:
        return
    shortest, longest = (f"{float(d) * 1000:.1f}" for d in durations)
    rate = info.r_frame_rate or info.fps
    command = f"ffmpeg -i {shlex.quote(str(draft.source))} -fps_mode cfr -r {rate} -c:v libx264 -crf 10 -c:a copy -c:s copy CFR.mkv"
    raise CliError(
        f"INPUT has a variable frame rate (frames last {shortest} to {longest} ms), which the encode cannot "
        f"keep; make it constant first, e.g. `{command}`, and encode CFR.mkv"
    )


@check(ENCODE)
def check_range(draft: Draft) -> None:
    """--start/--end in order, and frames INPUT has (the worker's own complaint would come after indexing;
    where ffprobe cannot count the frames, the plan checks them against the script)."""
    start, end = draft.args.start, draft.args.end
    if end is not None and end < (start or 0):
        raise CliError(f"--end must be >= --start (got --start {start or 0} --end {end})")
    assert draft.info is not None
    count = draft.info.frame_count
    if count is None:
        return
    for option, value in (("--start", start), ("--end", end)):
        if value is not None and value >= count:
            raise CliError(
                f"{option} {value} is beyond the end of INPUT: it has {count} frames (0 to {count - 1})"
            )


@check(ENCODE)
def check_streams_fit(draft: Draft) -> None:
    """Every stream the encode copies from INPUT (audio, subtitles, attachments) must go into OUTPUT's
    container: a refusal comes now, not at the join after the render. The streams that fail are named."""
    assert draft.info is not None and draft.tools is not None
    failing = streams_not_fitting(draft.source, draft.info, draft.muxer, draft.tools.ffmpeg)
    if not failing:
        return
    quoted = shlex.quote(str(draft.source))
    if {s.kind for s in failing} == {"audio"}:
        fix = f"re-encode the audio first, e.g. `ffmpeg -i {quoted} -map 0 -c copy -c:a aac AAC.mkv`, and encode AAC.mkv"
    else:
        dropped = " ".join(f"-map -0:{s.index}" for s in failing)
        fix = f"leave them out first, e.g. `ffmpeg -i {quoted} -map 0 {dropped} -c copy FIXED.mkv`, and encode FIXED.mkv"
    mkv = "write an .mkv OUTPUT or " if draft.muxer != "matroska" else ""
    raise CliError(
        f"INPUT's {', '.join(s.describe() for s in failing)} cannot be copied into {draft.output.suffix}; {mkv}{fix}"
    )


@check(ENCODE, PREVIEW)
def notice_odd_size(draft: Draft) -> None:
    assert draft.info is not None
    if notice := odd_size_notice(draft.info):
        draft.notify(notice)


@check(ENCODE, PREVIEW)
def notice_alpha(draft: Draft) -> None:
    assert draft.info is not None
    if notice := alpha_notice(draft.info):
        draft.notify(notice)


@check(PREVIEW)
def check_moments(draft: Draft) -> None:
    """preview's --at: moments of INPUT."""
    assert draft.info is not None
    if draft.args.at:
        draft.at = tuple(parse_at(draft.args.at, draft.info.fps, draft.info.frame_count or 2**62))


@check(ENCODE)
def notice_streams_left_out(draft: Draft) -> None:
    assert draft.info is not None
    for notice in filter(
        None, [*stream_notices(draft.info), attachment_notice(draft.info, draft.muxer, draft.output)]
    ):
        draft.notify(notice)


@check(ENCODE)
def check_frame_size(draft: Draft) -> None:
    """The model's smallest side, checked before anything loads (the filter would refuse it later)."""
    info = draft.info
    assert info is not None
    if draft.vpy is not None:
        return
    width, height = read_size(info)
    if min(width, height) < MIN_SIDE:
        read = f" (read as {width}x{height})" if (width, height) != (info.width, info.height) else ""
        raise CliError(
            f"INPUT is {info.width}x{info.height}{read}; the model needs each side to be at least {MIN_SIDE} "
            "pixels: upscale or pad it first (e.g. in your own script, passed with --vpy)"
        )


@check(ENCODE, PREVIEW)
def check_geometry(draft: Draft) -> None:
    """The generated script's input preparation and output size (``[input]``, ``[output]``) against INPUT's
    size, sample aspect ratio, chroma subsampling and field order: an impossible crop, a size above the
    model's 4x or off the aspect ratio refused now; the notice of fields left woven (the script says what the
    geometry rules notice: ivtc on a progressive source, no border found)."""
    info = draft.info
    assert info is not None
    if draft.vpy is not None:
        if info.interlaced:
            draft.notify(
                f"INPUT is interlaced ({info.field_order}); your script (--vpy) gets its fields woven into frames: "
                "deinterlace there, e.g. with streamdiffvsr.vsfilter.prepare_source(clip, deinterlace='bwdif')"
            )
        return
    geometries = []
    for settings in draft.compared:
        try:
            geometries.append(planned_geometry(info, settings))
        except GeometryError as exc:
            key = KEYS_BY_NAME.get(str(exc).partition(" ")[0])  # the message starts with the key's bare name
            raise CliError(f"{key.section}.{exc}" if key else str(exc)) from None
        if info.interlaced and geometries[-1].deinterlace == "off":
            draft.notify(
                f"INPUT is interlaced ({info.field_order}) and input.deinterlace=off: it is upscaled as woven "
                "frames (combing stays); --set input.deinterlace=auto deinterlaces it"
            )
    first = geometries[0]
    shapes = {
        (g.rate, g.final, settings["crop"]) for g, settings in zip(geometries, draft.compared, strict=True)
    }
    if len(shapes) > 1:  # output.kernel and output.method compare well: the same frames, the same size
        raise CliError(
            "preview's columns must have the same frames and output size: compare input.deinterlace, input.crop "
            "or output.size values in one preview each"
        )
    draft.geometry = first
    if draft.at is not None and first.rate != 1:  # --at counts INPUT's frames: the script's frames from here
        draft.at = tuple(sorted({script_range(n, None, first.rate)[0] for n in draft.at}))


@check(ENCODE)
def check_memory(draft: Draft) -> None:
    """Before anything loads: say what the output frame size costs in memory on the CPU, and refuse what
    cannot fit this machine's memory (the workers of one machine together). Skipped where the networks run
    on a GPU (an NVIDIA GPU here, or a Ray cluster), whose memory this rule does not describe."""
    info, parallel = draft.info, draft.parallel
    assert info is not None
    if draft.vpy is not None:
        return
    assert draft.geometry is not None
    width, height = draft.geometry.model_output
    need = worker_memory_mib(width * height)
    if need < MEMORY_NOTICE_MIB or parallel.address is not None or nvidia_gpu_present():
        return
    workers = parallel.workers or 1
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    verb = "needs" if workers == 1 else "need"
    count = "a render worker" if workers == 1 else f"{workers} render workers"
    needs = f"OUTPUT frames are {width}x{height}: {count} on the CPU {verb} about {need / 1024:.1f} GiB"
    if workers > 1:
        needs += f" each ({need * workers / 1024:.1f} GiB together)"
    if need * workers <= total:
        draft.notify(f"{needs}; this machine has {total / 1024:.1f} GiB")
        return
    room = output_pixels_within(total / workers)
    lines = max(MIN_SIDE, int(info.height * (room / (width * height)) ** 0.5) // 2 * 2)
    command = (
        f"ffmpeg -i {shlex.quote(str(draft.source))} -vf scale=-2:{lines} -c:v libx264 -crf 10 -c:a copy -c:s "
        "copy SMALLER.mkv"
    )
    fewer = " (or use fewer --workers)" if workers > 1 else ""
    raise CliError(
        f"{needs}, more than this machine's {total / 1024:.1f} GiB of memory (measured with nano: {WORKER_BASE_MIB} "
        f"MiB + {MIB_PER_MPX} MiB per million output pixels up to {KNEE_MPX} million, {LARGE_MIB_PER_MPX} MiB per "
        "million beyond); render on a GPU, or make INPUT at most about "
        f"{lines} lines high first{fewer}, e.g. `{command}`, and encode SMALLER.mkv"
    )


@check(ENCODE)
def notice_hdr10_lost(draft: Draft) -> None:
    """Say so when the codec cannot carry INPUT's HDR10 metadata (a --vpy's output is its own: none of INPUT's)."""
    assert draft.info is not None
    if draft.vpy is None and (notice := CODECS[draft.settings["codec"]].hdr10_notice(draft.info.hdr10)):
        draft.notify(notice)


@check(ENCODE, PREVIEW)
def choose_the_model(draft: Draft) -> None:
    """The checkpoint (its notice shown): always for the generated script, for the user's only if --model."""
    if draft.vpy is None or draft.args.model:
        draft.model = choose_model(draft.args.model)
        draft.notify(draft.model.notice)


@check(ENCODE, PREVIEW)
def check_flow_available(draft: Draft) -> None:
    """RAFT's weights must be at hand before the script runs (else it fails after indexing the source)."""
    if draft.vpy is not None:
        return
    from streamdiffvsr.locate import needs_pretrained_weights, raft_file, resolve_flow

    assert draft.model is not None
    for settings in draft.compared:
        flow, weights = resolve_flow(draft.model.path, settings["flow"], draft.flow_weights)
        if not needs_pretrained_weights(flow, weights) or raft_file(flow).is_file():
            continue
        raise CliError(
            f"flow {flow} needs torchvision's pretrained weights, which are not cached ({raft_file(flow)}); run "
            f"`streamdiffvsr download --flow {flow}` once where there is network, or pass "
            "--set engine.flow_weights=FILE, or use --set engine.flow=dis"
        )


@check(ENCODE, PREVIEW)
def notice_steps(draft: Draft) -> None:
    """A notice per distinct step count the model was not trained for."""
    if draft.vpy is not None:
        return
    assert draft.model is not None
    model = draft.model
    for notice in dict.fromkeys(steps_notice(settings["steps"], model) for settings in draft.compared):
        if notice:
            draft.notify(notice)


@check(ENCODE)
def notice_ignored_engine_settings(draft: Draft) -> None:
    """With --vpy the filter options are the script's: say which --set of the engine has no effect."""
    if draft.vpy is None:
        return
    names = (find_key(item.partition("=")[0].strip()).name for item in draft.settings.overrides)
    if ignored := [name for name in names if KEYS_BY_NAME[name].section == "engine"]:
        draft.notify(f"--vpy: the filter options come from your script; ignoring --set {', '.join(ignored)}")


def check_constant_size(source: Path, info: SourceInfo, ffprobe: str) -> None:
    """Refuse a video whose frame size changes midway (the filter takes one size), naming where (run by
    ``script_failures_explained``, not in the order above)."""
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
