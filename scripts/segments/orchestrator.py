"""The segmented encode: plan segments at chain anchors, render the missing ones (here, or on Ray workers),
record each in the manifest as it is verified, then join them into OUTPUT and remove the work folder.

Rerunning the same command resumes: finished segments are kept, the rest are rendered. A source, script,
model or setting that differs from the work folder's is refused (``--restart`` starts over).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.probe import SourceInfo
from streamdiffvsr.cli.progress import Progress
from streamdiffvsr.cli.segments.job import SegmentJob, SegmentResult, render_segment
from streamdiffvsr.cli.segments.join import join, write_concat_list
from streamdiffvsr.cli.segments.manifest import (
    Manifest,
    load,
    locked,
    remove_leftovers,
    segment_file,
    work_folder,
)
from streamdiffvsr.cli.segments.pipeline import PipelineError
from streamdiffvsr.cli.segments.plan import Segment, scan_script, split
from streamdiffvsr.cli.settings.schema import Settings

MAX_ATTEMPTS = 3
GENERATED_SCRIPT = "upscale.vpy"
CONCAT_LIST = "segments.ffconcat"


@dataclass(frozen=True)
class Parallel:
    """How to run segments: ``workers`` at once on a local Ray instance (None: one per CUDA device, at least
    one), or on the cluster at ``address``."""

    workers: int | None = None
    address: str | None = None


@dataclass(frozen=True)
class Request:
    """One ``encode`` as the command line resolved it."""

    source: Path
    output: Path
    info: SourceInfo
    settings: Settings
    script_text: str | None  # the generated script; None with --vpy
    user_script: Path | None
    vpy_args: dict[str, str]
    start: int
    end: int | None
    tag_colour: bool
    vspipe: str
    ffprobe: str


def fingerprint(request: Request) -> dict[str, object]:
    """What makes two runs the same encode (what a resume must match)."""
    script = request.script_text or request.user_script.read_text(encoding="utf-8", errors="replace")
    stat = request.source.stat()
    source = {"path": str(request.source.absolute()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {  # in the order a difference is reported: the generated script changes with the settings
        "source": source,
        "settings": dict(request.settings.values),
        "arguments": dict(request.vpy_args),
        "range": [request.start, request.end],
        "script": hashlib.sha256(script.encode()).hexdigest()[:16],
    }


def _estimated_frames(request: Request) -> float:
    if request.end is not None:
        return request.end - request.start + 1
    if request.info.frame_count is None:
        return float("inf")
    return request.info.frame_count - request.start


def _plan(request: Request, script: Path) -> list[Segment]:
    scan = scan_script(request.vspipe, script, request.vpy_args, request.end)
    last = request.end if request.end is not None else scan.frames - 1
    if request.start > last:
        raise CliError(f"--start {request.start} is beyond the script's last frame ({scan.frames - 1})")
    return split(scan.starts or [], request.start, last, request.settings["min_frames"])


def run_segmented(
    request: Request,
    parallel: Parallel,
    restart: bool,
    progress: Progress,
    notify: Callable[[str], None],
    run_linear: Callable[[], None],
    join_command: Callable[[Path, Path], list[str]],
) -> None:
    """Encode ``request`` in segments, or call ``run_linear`` when it is too short to split."""
    folder = work_folder(request.output.absolute())
    if not folder.exists() and _estimated_frames(request) < 2 * request.settings["min_frames"]:
        run_linear()
        return
    with locked(folder, restart):
        manifest = load(folder, fingerprint(request))
        script = request.user_script or folder / GENERATED_SCRIPT
        if request.script_text is not None:
            script.write_text(request.script_text, encoding="utf-8")
        if manifest is None:
            segments = _plan(request, script)
            if len(segments) == 1:
                shutil.rmtree(folder)
                run_linear()
                return
            manifest = Manifest(folder, fingerprint(request), segments)
            manifest.save()
        elif manifest.done:
            notify(f"resuming: {len(manifest.done)} of {len(manifest.segments)} segments already done")
        pending = manifest.pending()
        remove_leftovers(
            folder, {script} | {segment_file(folder, s) for s in manifest.segments if s not in pending}
        )
        _render(request, manifest, pending, script, parallel, progress, notify)
        files = [segment_file(folder, s) for s in manifest.segments]
        write_concat_list(
            folder / CONCAT_LIST, files, [s.frames for s in manifest.segments], request.info.fps
        )
        partial = folder / f"joined.partial{request.output.suffix}"
        join(join_command(folder / CONCAT_LIST, partial), request.ffprobe, partial, request.output,
             sum(s.frames for s in manifest.segments))  # fmt: skip
    shutil.rmtree(folder)


def _render(
    request: Request,
    manifest: Manifest,
    pending: list[Segment],
    script: Path,
    parallel: Parallel,
    progress: Progress,
    notify: Callable[[str], None],
) -> None:
    count = len(manifest.segments)
    done_frames = sum(s.frames for s in manifest.segments if s not in pending)
    total = sum(s.frames for s in manifest.segments)
    running: dict[int, int] = {}
    unfinished = {s.index for s in pending}

    def show(frames: dict[int, int]) -> None:
        running.clear()
        running.update({i: n for i, n in frames.items() if i in unfinished})
        progress.update(done_frames + sum(running.values()), total)
        progress.render()

    def on_result(job: SegmentJob, result: SegmentResult, attempt: int) -> bool:
        nonlocal done_frames
        segment = job.segment
        progress.clear()
        if result.frames is not None:
            manifest.finish(segment, result.frames)
            done_frames += segment.frames
            unfinished.discard(segment.index)
            running.pop(segment.index, None)
            progress.update(done_frames + sum(running.values()), total)
            notify(
                f"{segment.describe(count)} done in {result.seconds:.1f} s"
                + (f" on {result.node}" if result.node and parallel != Parallel(1) else "")
            )
            return False
        where = f" on {result.node}" if result.node else ""
        if attempt >= MAX_ATTEMPTS:
            raise PipelineError(
                segment.describe(count), f"{attempt} attempts; last{where}: {result.error}", list(result.tail)
            )
        notify(f"{segment.describe(count)} failed{where} ({result.error}); trying again")
        running[segment.index] = 0
        return True

    jobs = [
        SegmentJob(
            segment=s, count=count, script=script, vpy_args=request.vpy_args, source=request.source,
            target=segment_file(manifest.folder, s), info=request.info, encoder=request.settings.section("encoder"),
            tag_colour=request.tag_colour, check_anchor=s.first != request.start,
        )
        for s in pending
    ]  # fmt: skip
    progress.update(done_frames, total)
    cpus, gpus = _local_resources()
    local_workers = parallel.workers or max(1, gpus)
    if local_workers == 1 and parallel.address is None:
        for job in jobs:
            attempt = 1
            while on_result(job, render_segment(job, _LocalProgress(job.segment.index, show)), attempt):
                attempt += 1
        progress.finish()
        return
    from streamdiffvsr.cli.segments import ray_pool as workers

    if parallel.address is not None:
        workers.connect(parallel.address, local=False)
        workers.run_parallel(jobs, None, show, on_result)
    else:
        with workers.local_instance(cpus, gpus) as address:
            workers.connect(address, local=True)
            workers.run_parallel(jobs, local_workers, show, on_result)
    progress.finish()


class _LocalProgress:
    """A segment's Pipeline progress, shown as part of the whole job's bar."""

    def __init__(self, index: int, show: Callable[[dict[int, int]], None]) -> None:
        self.index, self.show = index, show

    def update(self, done: int, total: int | None = None) -> None:
        self.show({self.index: done})

    def render(self) -> None: ...
    def clear(self) -> None: ...
    def finish(self) -> None: ...


def _local_resources() -> tuple[int, int]:
    import os

    import torch

    return os.cpu_count() or 1, torch.cuda.device_count()
