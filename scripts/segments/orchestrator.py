"""The one orchestrator of an encode: plan, render the jobs on a pool of workers with one retry policy, and,
for a segmented plan, join the segments into OUTPUT.

A plan of one segment is encoded straight into OUTPUT (ffmpeg muxes audio, subtitles and chapters as it
encodes). A longer plan renders its segments into a work folder beside OUTPUT, records each verified one in the
manifest, and joins them; rerunning the same command resumes (a source, script, model, setting or thread count
that differs is refused; ``--restart`` starts over).

It takes the preflight's ``Request`` as it is and owns what an encode leaves beside OUTPUT: it first removes
what killed runs of the same OUTPUT left there, and writes the generated script under its hidden name for the
encode's time (``run`` and ``dry_run`` alike).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from streamdiffvsr.cli.errors import EncodeError
from streamdiffvsr.cli.preflight.request import Parallel, Request
from streamdiffvsr.cli.progress import ProgressSink
from streamdiffvsr.cli.segments import speeds
from streamdiffvsr.cli.segments.estimate import SEGMENT_SECONDS, Estimate, encode_estimate
from streamdiffvsr.cli.segments.jobs import Job, Result, Segment
from streamdiffvsr.cli.segments.join import join, write_concat_list
from streamdiffvsr.cli.segments.manifest import (
    Manifest,
    check_folder,
    load,
    locked,
    remove_leftovers,
    source_fingerprint,
)
from streamdiffvsr.cli.segments.partials import (
    attempt_partial,
    claim,
    joined_partial,
    partial_path,
    remove_dead_leftovers,
    segment_file,
    segment_partial,
    work_folder,
)
from streamdiffvsr.cli.segments.plan import make_plan, usable_cores, worker_count
from streamdiffvsr.cli.segments.pools import LocalPool, Pool
from streamdiffvsr.cli.segments.worker import LocalWorker, WorkerFailed, local_worker, put_in_place
from streamdiffvsr.options import SCALE, device_name

# Settings that say how an encode runs, not what it renders: a resume with other values takes the same segments.
RUN_ONLY_SETTINGS = ("max_attempts",)
POLL_S = 0.25
CONCAT_LIST = "segments.ffconcat"
DRY_RUN_LISTED = 10


def fingerprint(request: Request) -> dict[str, object]:
    """What makes two runs the same encode (what a resume must match)."""
    return {  # in the order a difference is reported: the generated script changes with the settings
        "source": source_fingerprint(request.source),
        "settings": {k: v for k, v in request.settings.values.items() if k not in RUN_ONLY_SETTINGS},
        "arguments": {k: v for k, v in request.script.args.items() if k != "src"},
        "range": [request.start, request.end],
        "threads": request.script.threads,
        "script": hashlib.sha256(request.script_text.encode()).hexdigest()[:16],
    }


def run(request: Request, progress: ProgressSink, notify: Callable[[str], None]) -> None:
    """Encode ``request`` into OUTPUT; an EncodeError (after cleanup) if a job fails for good."""
    with _cluster_joined(request.parallel), _script_file(request, notify):
        _encode(request, request.parallel, request.restart, progress, notify)


@contextlib.contextmanager
def _cluster_joined(parallel: Parallel) -> Iterator[None]:
    """The Ray cluster of --ray joined for the run (the preflight only looked at it), before anything else: a
    token it refuses, or a cluster without a GPU, is one line before the script is evaluated."""
    if parallel.cluster is None:
        yield
        return
    from streamdiffvsr.cli.segments import ray_pool

    with ray_pool.joined(parallel.cluster):
        yield


def remove_what_killed_runs_left(request: Request, notify: Callable[[str], None]) -> None:
    """Remove (and say so) what killed runs of ``request``'s OUTPUT left beside it."""
    if removed := remove_dead_leftovers(request.output, [request.source, *filter(None, [request.vpy])]):
        notify(f"removed what an interrupted run left: {', '.join(path.name for path in removed)}")


@contextlib.contextmanager
def _script_file(request: Request, notify: Callable[[str], None]) -> Iterator[None]:
    """The generated script written under its hidden name beside OUTPUT for the encode's time, and removed
    after; first, what runs of this OUTPUT that were killed left there is removed."""
    remove_what_killed_runs_left(request, notify)
    if request.vpy is not None:
        yield
        return
    try:
        claim(request.script.path)
        request.script.path.write_text(request.script_text, encoding="utf-8")
        yield
    finally:
        request.script.path.unlink(missing_ok=True)


def _encode(
    request: Request, parallel: Parallel, restart: bool, progress: ProgressSink, notify: Callable[[str], None]
) -> None:
    folder = work_folder(request.output.absolute())
    check_folder(folder)
    if folder.exists() and not restart:  # a resume: its manifest is checked before anything starts
        with locked(folder, False, notify):
            manifest = load(folder, fingerprint(request))
            with _first_worker(request, notify) as first:
                if manifest is None:  # killed before its first save
                    manifest = _new_manifest(request, folder, make_plan(first, *_range(request)))
                _run_segments(request, manifest, parallel, first, progress, notify)
        shutil.rmtree(folder)
        return
    with _first_worker(request, notify) as first:
        segments = make_plan(first, *_range(request))
        if len(segments) == 1:
            if folder.exists():  # --restart of a run that was split before
                with locked(folder, restart, notify):
                    shutil.rmtree(folder)
            _run_whole(request, segments[0], parallel, first, progress, notify)
            return
        with locked(folder, restart, notify):
            _run_segments(
                request, _new_manifest(request, folder, segments), parallel, first, progress, notify
            )
    shutil.rmtree(folder)


def _range(request: Request) -> tuple[int, int | None, int]:
    return request.start, request.end, request.settings["min_frames"]


def _new_manifest(request: Request, folder: Path, segments: list[Segment]) -> Manifest:
    manifest = Manifest(folder, fingerprint(request), segments)
    manifest.save()
    return manifest


def dry_run(request: Request, notify: Callable[[str], None]) -> str:
    """The plan and the estimate block of ``request`` at the speed an earlier ``preview`` of the same measured
    on its device (none for the user's script), rendering nothing (the script is evaluated, no model)."""
    return dry_run_estimate(request, notify)[0]


def dry_run_estimate(
    request: Request, notify: Callable[[str], None], first: LocalWorker | None = None
) -> tuple[str, Estimate]:
    """``dry_run``'s text and the estimate it describes; ``first``: a worker that has evaluated the request's
    script already (a batch's, whose scripts are written), else one is started."""
    parallel = request.parallel
    with contextlib.ExitStack() as stack:
        if first is None:
            stack.enter_context(_cluster_joined(parallel))
            stack.enter_context(_script_file(request, notify))
            first = stack.enter_context(_first_worker(request, notify))
        segments = make_plan(first, *_range(request))
        warmup = _warmup(first, request, segments, notify)
    workers = worker_count(parallel.workers, first.cuda_devices, on_cluster=parallel.address is not None)
    _fewer_workers_notice(parallel.workers, len(segments), len(segments), request, notify)
    lines = [f"plan: {len(segments)} segment{'s' * (len(segments) != 1)}"]
    lines += [f"  {s.describe(len(segments))}" for s in segments[:DRY_RUN_LISTED]]
    if len(segments) > DRY_RUN_LISTED:
        lines.append(f"  ... and {len(segments) - DRY_RUN_LISTED} more")
    if first.model_size is not None:  # the estimate's frame size: the source as the script prepared it
        width, height = first.model_size
        lines.append(
            f"  the model gets {width}x{height} frames (its output {SCALE * width}x{SCALE * height})"
        )
    if parallel.address is not None and parallel.workers is None:
        lines.append(f"  on the Ray cluster at {parallel.address}: one worker per GPU (counted when it runs)")
    device = device_name(request.settings["device_index"], first.cuda_devices)
    speed = None
    if request.model is not None and request.vpy is None:
        size = first.model_size or request.size  # the frames the model gets, as the script prepared them
        key = speeds.speed_key(request.settings, request.model.path, size, device, request.script.threads)
        speed = speeds.recorded(key)
    estimate = encode_estimate(tuple(s.frames for s in segments), speed, workers, device,
                               request.script.threads, warmup, local=parallel.address is None)  # fmt: skip
    return "\n".join([*lines, estimate.describe(float(request.fps), device)]), estimate


@contextlib.contextmanager
def _first_worker(request: Request, notify: Callable[[str], None]) -> Iterator:
    """The local worker that evaluates the script first (its notices shown, the plan scanned); it renders
    too unless the jobs go to Ray."""
    try:
        with local_worker(request.script, notify, str(request.output.absolute())) as worker:
            yield worker
    except WorkerFailed as exc:
        raise EncodeError("script", str(exc), exc.tail) from None


def _run_whole(
    request: Request,
    segment: Segment,
    parallel: Parallel,
    first: LocalWorker,
    progress: ProgressSink,
    notify: Callable[[str], None],
) -> None:
    _warmup(first, request, [segment], notify)
    _fewer_workers_notice(parallel.workers, 1, 1, request, notify)

    with _pool(request, parallel, first, notify, jobs=1) as pool:
        _run_jobs(pool, [segment], lambda segment, number: whole_job(request, segment, number),
                  lambda job, result: None, progress, notify, max_attempts=request.settings["max_attempts"])  # fmt: skip


def whole_job(request: Request, segment: Segment, number: int) -> Job:
    """Attempt ``number`` at the one segment of ``request``, encoded straight into OUTPUT."""
    partial = attempt_partial(partial_path(request.output), number)
    return Job(segment, 1, tuple(request.commands.whole(partial)), partial, request.output,
               check_anchor=False, overwrite=request.overwrite)  # fmt: skip


def segment_job(request: Request, manifest: Manifest, segment: Segment, number: int) -> Job:
    """Attempt ``number`` at ``segment`` of ``request``'s segmented plan, into its file in the work folder."""
    folder, count = manifest.folder, len(manifest.segments)
    partial = attempt_partial(segment_partial(folder, segment.index), number)
    return Job(segment, count, tuple(request.commands.segment(partial)), partial,
               segment_file(folder, segment.index), check_anchor=segment.first != request.start)  # fmt: skip


def _run_segments(
    request: Request,
    manifest: Manifest,
    parallel: Parallel,
    first: LocalWorker,
    progress: ProgressSink,
    notify: Callable[[str], None],
) -> None:
    folder, count = manifest.folder, len(manifest.segments)
    last = request.end if request.end is not None else first.frames - 1
    manifest.check_covers(request.start, last)
    pending = manifest.pending(notify)
    if len(pending) < count:
        notify(f"resuming: {count - len(pending)} of {count} segments already done")
    remove_leftovers(folder, {segment_file(folder, s.index) for s in manifest.segments if s not in pending})

    def attempt(segment: Segment, number: int) -> Job:
        return segment_job(request, manifest, segment, number)

    done_frames = sum(s.frames for s in manifest.segments if s not in pending)
    _warmup(first, request, pending, notify)
    _fewer_workers_notice(parallel.workers, len(pending), count, request, notify)
    if pending:
        with _pool(request, parallel, first, notify, len(pending)) as pool:
            _run_jobs(pool, pending, attempt, lambda job, result: manifest.finish(job.segment, result.frames),
                      progress, notify, done_frames, sum(s.frames for s in manifest.segments),
                      max_attempts=request.settings["max_attempts"])  # fmt: skip
    join_segments(request, manifest)


def join_segments(request: Request, manifest: Manifest) -> None:
    """Join the finished segments of ``manifest`` into OUTPUT (verified, then moved into place)."""
    folder = manifest.folder
    files = [segment_file(folder, s.index) for s in manifest.segments]
    write_concat_list(folder / CONCAT_LIST, files, [s.frames for s in manifest.segments], request.fps)
    partial = joined_partial(folder, request.output)
    join([request.tools.ffmpeg, *request.commands.join(folder / CONCAT_LIST, partial)], request.tools.ffprobe,
         partial, request.output, sum(s.frames for s in manifest.segments), request.overwrite)  # fmt: skip


@contextlib.contextmanager
def _pool(
    request: Request, parallel: Parallel, first: LocalWorker, notify: Callable[[str], None], jobs: int
) -> Iterator[Pool]:
    """The workers ``jobs`` jobs run on: the first worker alone, or Ray actors (it is closed then): on the
    cluster (``_cluster_joined``) or on a local instance for more than one local worker."""
    cpus, gpus = usable_cores(), first.cuda_devices
    workers = worker_count(parallel.workers, gpus, jobs=jobs)
    if parallel.address is None and workers == 1:
        pool: Pool = LocalPool(first, request.script, notify, str(request.output.absolute()))
        try:
            yield pool
        finally:
            pool.close()
        return
    first.close()
    from streamdiffvsr.cli.segments import ray_pool

    with contextlib.ExitStack() as stack:
        if parallel.cluster is None:
            address = stack.enter_context(ray_pool.local_instance(cpus, gpus))
            ray_pool.connect(address, local=True)

        pool = ray_pool.RayPool(request.script, workers if parallel.address is None else None, jobs, notify)
        try:
            yield pool
        finally:
            pool.close()


def _warmup(
    first: LocalWorker, request: Request, segments: list[Segment], notify: Callable[[str], None]
) -> int:
    """The frames rendered before the encode's first one when it is not a chain start (the filter starts at
    the chain's start), said in a notice: the progress shows them only as its start."""
    if request.start == 0 or not any(s.first == request.start for s in segments):
        return 0
    anchor = first.anchor_of(request.start)
    if anchor is None or anchor >= request.start:
        return 0
    frames = request.start - anchor
    start = f"--start {request.start}"
    if request.geometry is not None and request.geometry.rate != 1:  # --start counted INPUT's frames
        start = f"--start (frame {request.start} after {request.geometry.deinterlace})"
    notify(
        f"{start}: that frame is {frames} frames into its chain (which starts at frame {anchor}): "
        f"the model renders those {frames} frames first, as warm-up, so that OUTPUT's frames are the whole "
        "video's; the progress says 'starting' until then"
    )
    return frames


def _fewer_workers_notice(
    asked: int | None, jobs: int, planned: int, request: Request, notify: Callable[[str], None]
) -> None:
    """Say so when ``--workers N`` gets fewer workers: one per segment left to render at most (``planned``: the
    plan's segment count)."""
    if asked is None or asked <= jobs:
        return
    why = ""
    if planned == 1:
        twice = 2 * request.settings["min_frames"]
        why = (
            f" (a range splits only from {twice} frames on, twice segment.min_frames, and only at scene cuts "
            "or max_chain restarts)"
        )
    notify(
        f"--workers {asked}: {jobs} segment{'s' * (jobs != 1)} to render, so {jobs} worker{'s' * (jobs != 1)}{why}"
    )


def _run_jobs(
    pool: Pool,
    segments: list[Segment],
    attempt: Callable[[Segment, int], Job],
    on_done: Callable[[Job, Result], None],
    progress: ProgressSink,
    notify: Callable[[str], None],
    done_frames: int = 0,
    total: int | None = None,
    on_failure: Callable[[Job, EncodeError], list[Segment]] | None = None,
    *,
    max_attempts: int,
) -> None:
    """Render ``segments`` on ``pool`` to the end, attempt n at a segment being the job ``attempt(segment, n)``:
    the one retry policy (a job that failed in a way another try can mend is tried again, up to ``max_attempts``
    tries: segment.max_attempts;
    any other failure stops the encode, or, given ``on_failure`` (a batch), goes there, which returns the
    queued segments that go with it (its file's), and the rest go on). Only the attempt whose result is
    accepted is moved into place; every other attempt's partial is removed at the end, even one a worker cut
    off but alive still writes."""
    queue, attempts = deque(segments), dict.fromkeys(segments, 0)
    total = total if total is not None else sum(segment.frames for segment in segments)
    partials: list[Path] = []
    running = 0
    started: dict[Segment, Job] = {}
    done_now: dict[Segment, int] = {}

    def seconds_left(fps: float) -> float | None:
        """The encode's ETA from the same calculation as `preview`'s estimate: what is left of each started
        segment and every queued one, on the workers there are, at the speed measured so far."""
        workers = max(1, min(running + pool.idle(), len(started) + len(queue)))
        left = [job.segment.frames - done_now.get(segment, 0) for segment, job in started.items()]
        left += [segment.frames for segment in queue]
        return Estimate(tuple(left), workers / fps, workers, SEGMENT_SECONDS).wall_seconds

    progress.eta = seconds_left
    progress.update(done_frames, total)
    try:
        while queue or running:
            while queue and pool.idle():
                segment = queue.popleft()
                attempts[segment] += 1
                job = attempt(segment, attempts[segment])
                partials.append(job.partial)
                pool.submit(job)
                started[segment] = job
                running += 1
            for job, result in pool.wait(POLL_S):
                if started.get(job.segment) is not job:
                    continue  # an attempt given up on (never moved into place)
                running -= 1
                del started[job.segment]
                progress.clear()
                where = f" on {result.node}" if result.node else ""
                if result.frames is not None:
                    result = put_in_place(job, result)
                if result.frames is not None:
                    done_frames += job.segment.frames
                    if job.count > 1:
                        notify(f"{job.describe()} done in {result.seconds:.1f} s{where}")
                    on_done(job, result)
                elif result.retryable and attempts[job.segment] < max_attempts:
                    notify(f"{job.describe()} failed{where} ({result.error}); trying again")
                    queue.appendleft(job.segment)
                else:
                    tries = attempts[job.segment]
                    status = result.error if tries == 1 else f"{tries} attempts; last{where}: {result.error}"
                    where = job.describe() if job.count > 1 else ""
                    error = EncodeError(result.side or "the worker", status, list(result.tail), where)
                    if on_failure is None:
                        raise error
                    dropped = set(on_failure(job, error))
                    total -= job.segment.frames + sum(
                        segment.frames for segment in queue if segment in dropped
                    )
                    queue = deque(segment for segment in queue if segment not in dropped)
            done_now = pool.progress()
            progress.update(done_frames + sum(done_now.values()), total)
            progress.draw()
        progress.finish()
    finally:
        progress.clear()
        for partial in partials:
            partial.unlink(missing_ok=True)
