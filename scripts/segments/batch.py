"""``encode`` of many files: INPUTs (video files, or folders of them) into the folder OUTDIR, each under its own
name, on one pool of workers for the whole batch.

Every file goes through the single encode's preflight (``encode_request``); the problems of all files are
reported together, one line each naming the file, and nothing starts while any file is refused (unless
``--skip-refused``). Then one worker plans every file (evaluating each file's script in turn), and one pool
renders the jobs of all files, queued together: a worker given a job of another file evaluates that file's
script in place of its own, the networks staying loaded. Each file keeps its own work folder and manifest (its
resume record, as a single encode's) and is joined, verified and moved into place as soon as its last segment
is in; a file that fails is reported and the others go on. A record in OUTDIR (``RECORD``) names the files the
batch finished, with their fingerprint: a rerun skips them (never rendered again), resumes the others.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.console import printable
from streamdiffvsr.cli.errors import CliError, EncodeError
from streamdiffvsr.cli.media.ffmpeg_cmd import CONTAINERS
from streamdiffvsr.cli.preflight.build import encode_request
from streamdiffvsr.cli.preflight.request import Parallel, Request
from streamdiffvsr.cli.progress import Progress, format_duration
from streamdiffvsr.cli.segments import orchestrator
from streamdiffvsr.cli.segments.jobs import Job, Result, Segment
from streamdiffvsr.cli.segments.manifest import Manifest, check_folder, load, locked, remove_leftovers
from streamdiffvsr.cli.segments.partials import claim, segment_file, work_folder
from streamdiffvsr.cli.segments.plan import make_plan
from streamdiffvsr.cli.segments.worker import LocalWorker, WorkerFailed
from streamdiffvsr.cli.settings.codecs import CODECS
from streamdiffvsr.cli.settings.presets import load_settings
from streamdiffvsr.errors import StreamDiffVSRError

# What a folder INPUT contributes: its files with these extensions (any case), not hidden, sorted by name.
VIDEO_SUFFIXES = frozenset({".mkv", ".mp4", ".m4v", ".mov", ".avi", ".webm", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg",
                            ".vob", ".wmv", ".flv", ".ogv", ".y4m"})  # fmt: skip
RECORD = ".streamdiffvsr-batch.json"  # in OUTDIR: the files this batch finished
RECORD_VERSION = 1


def is_batch(inputs: list[Path], output: Path) -> bool:
    """``encode`` with several INPUTs, a folder INPUT or a folder OUTPUT is a batch; one file into one file is
    the single encode."""
    return len(inputs) > 1 or inputs[0].is_dir() or output.is_dir()


def folder_videos(folder: Path) -> list[Path]:
    """The video files of ``folder`` (``VIDEO_SUFFIXES``; hidden files and subfolders left alone), by name."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
         and p.is_file()),
        key=lambda p: os.fsencode(p.name),
    )  # fmt: skip


def output_name(source: Path, codec: str) -> str:
    """OUTDIR's name for ``source``: its own name where its container (.mkv, .mp4) takes the codec, else the
    same stem with .mkv."""
    keeps = CONTAINERS.get(source.suffix.lower()) in CODECS[codec].containers
    return source.name if keeps else f"{source.stem}.mkv"


def batch_pairs(
    inputs: list[Path], outdir: Path, codec: str
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """The (INPUT, OUTPUT) pairs of a batch in order, and the problems found on the way (an empty folder, two
    INPUTs writing the same OUTPUT), one line each."""
    pairs: list[tuple[Path, Path]] = []
    problems: list[tuple[str, str]] = []
    for given in inputs:
        sources = folder_videos(given) if given.is_dir() else [given]
        if given.is_dir() and not sources:
            problems.append(
                (str(given), f"a folder without video files ({' '.join(sorted(VIDEO_SUFFIXES))})")
            )
        for source in sources:
            output = outdir / output_name(source, codec)
            if clash := next((s for s, o in pairs if o == output), None):
                problems.append((source.name, f"writes {output.name}, as {clash} does; rename one of them"))
                continue
            pairs.append((source, output))
    return pairs, problems


class Record:
    """OUTDIR's record of the files the batch finished: each OUTPUT's name, its encode's fingerprint and the
    size, inode and time of the file it wrote (so a file replaced since is not taken for it)."""

    def __init__(self, outdir: Path) -> None:
        self.path = outdir / RECORD
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            raise CliError(
                f"cannot read {self.path} ({exc}); remove it (the batch's record of finished files)"
            ) from None
        ours = (
            isinstance(data, dict)
            and data.get("version") == RECORD_VERSION
            and isinstance(data.get("files"), dict)
        )
        self.files: dict[str, Any] = data["files"] if ours else {}

    @staticmethod
    def _written(output: Path) -> list[int] | None:
        with contextlib.suppress(OSError):
            found = output.stat()
            return [found.st_size, found.st_ino, found.st_mtime_ns]
        return None

    def wrote(self, output: Path) -> bool:
        """OUTPUT is the file this batch wrote (whatever its settings were)."""
        entry = self.files.get(output.name)
        return isinstance(entry, dict) and entry.get("file") == self._written(output)

    def finished(self, output: Path, fingerprint: dict[str, Any]) -> bool:
        """OUTPUT is the file this batch wrote with the encode of ``fingerprint``."""
        return self.wrote(output) and self.files[output.name].get("fingerprint") == _json(fingerprint)

    def add(self, output: Path, fingerprint: dict[str, Any]) -> None:
        self.files[output.name] = {"fingerprint": _json(fingerprint), "file": self._written(output)}
        temporary = self.path.with_name(f"{RECORD}.{os.getpid()}")
        claim(temporary)
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump({"version": RECORD_VERSION, "files": self.files}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class FileSegment(Segment):
    """A segment of file ``file`` (its place in the batch) named ``name`` in messages."""

    file: int = 0
    name: str = ""

    def describe(self, count: int) -> str:
        return f"{self.name}: {super().describe(count)}"


@dataclass
class BatchFile:
    """One file of the batch: its request, its plan and how it went."""

    request: Request
    name: str
    segments: list[FileSegment] = field(default_factory=list)
    left: set[FileSegment] = field(default_factory=set)  # not finished yet
    started: set[FileSegment] = field(default_factory=set)
    manifest: Manifest | None = None  # None: one segment, encoded straight into OUTPUT
    locks: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    began: float | None = None
    seconds: float = 0.0
    result: str = ""  # "done", "already done" or "failed: ..."; empty while it is to render

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments)


def run_batch(args: argparse.Namespace, notify: Callable[[str], None]) -> int:
    """``encode INPUT... OUTDIR``: 0 when every file is done, 1 when any failed or was refused."""
    outdir: Path = args.output
    lines, notify = notify, _once(notify)  # each segment's line as it comes; other notices once
    if outdir.exists() and not outdir.is_dir():
        raise CliError(
            f"OUTPUT {outdir} is a file: a batch (several INPUTs or a folder) writes into a folder"
        )
    if not outdir.parent.is_dir():
        raise CliError(f"the folder of OUTPUT ({outdir.parent}) does not exist")
    settings = load_settings(args.preset, args.set)
    pairs, problems = batch_pairs(args.inputs, outdir, settings["codec"])
    outdir.mkdir(exist_ok=True)
    record = Record(outdir)
    files = _requests(args, pairs, record, problems, notify)
    for name, why in problems:
        print(f"streamdiffvsr: error: {printable(name)}: {printable(why)}", file=sys.stderr, flush=True)
    if problems and not args.skip_refused:
        raise CliError(
            f"{len(problems)} of {len(pairs)} files refused (each above); fix them, or pass --skip-refused to "
            "encode the others"
        )
    runnable = [f for f in files if not f.result]
    # every file's checks looked at the same --ray cluster (if any): the batch joins it once, for its time
    with orchestrator._cluster_joined(runnable[0].request.parallel if runnable else Parallel()):
        if args.dry_run:
            _dry_run(files, notify)
            return 0
        for file in [f for f in files if f.result]:  # finished: only what a killed run left beside it goes
            orchestrator.remove_what_killed_runs_left(file.request, notify)
        if runnable:
            _render(runnable, args, record, notify, lines)
    _summary(files, problems)
    return 1 if problems or any(f.result.startswith("failed") for f in files) else 0


def _once(notify: Callable[[str], None]) -> Callable[[str], None]:
    """``notify``, saying each notice once: the same for every file (the model, the filter's options) too."""
    said: set[str] = set()

    def once(message: str) -> None:
        if message not in said:
            said.add(message)
            notify(message)

    return once


def _requests(
    args: argparse.Namespace,
    pairs: list[tuple[Path, Path]],
    record: Record,
    problems: list[tuple[str, str]],
    notify: Callable[[str], None],
) -> list[BatchFile]:
    """Each pair through the preflight: the files to render (a finished one marked "already done") and, in
    ``problems``, one line per refused file."""
    files: list[BatchFile] = []
    for source, output in pairs:
        ours = not args.restart and record.wrote(output)
        values = {**vars(args), "input": source, "output": output, "overwrite": args.overwrite or ours}
        try:
            request = encode_request(argparse.Namespace(**values), notify)
        except (CliError, StreamDiffVSRError) as exc:
            problems.append((source.name, str(exc)))
            continue
        file = BatchFile(request, source.name)
        if ours and record.finished(output, orchestrator.fingerprint(request)):
            file.result = "already done"
        elif ours and not args.overwrite:
            problems.append((source.name, f"OUTPUT {output} exists (an earlier batch wrote it from another source "
                             "or with other settings); pass --overwrite to replace it"))  # fmt: skip
            continue
        files.append(file)
    return files


def _dry_run(files: list[BatchFile], notify: Callable[[str], None]) -> None:
    """Each file's plan and estimate (each script evaluated in turn on one worker), then the batch's total on
    one pool."""
    estimates = []
    runnable = [f for f in files if not f.result]
    with contextlib.ExitStack() as stack:
        for file in runnable:
            stack.enter_context(orchestrator._script_file(file.request, notify))
        first = (
            stack.enter_context(orchestrator._first_worker(runnable[0].request, notify)) if runnable else None
        )
        for file in files:
            if file.result:
                print(f"{file.name}: {file.result}, skipped", flush=True)
                continue
            try:
                if file is not runnable[0]:
                    first.load(file.request.script)
            except WorkerFailed as exc:
                raise EncodeError("script", str(exc), exc.tail, file.name) from None
            text, estimate = orchestrator.dry_run_estimate(file.request, notify, first)
            lines = "\n".join(f"  {line}" for line in text.splitlines())
            print(f"{file.name} -> {file.request.output}\n{lines}", flush=True)
            estimates.append(estimate)
    if not estimates:
        print("batch: nothing to render", flush=True)
        return
    speeds = [e.seconds_per_frame for e in estimates]
    base = speeds[0]
    if base is not None and all(speeds):  # each file's frames counted at the first file's speed
        frames = tuple(round(f * speed / base) for e, speed in zip(estimates, speeds, strict=True)
                       for f in e.segment_frames)  # fmt: skip
    else:
        frames, base = tuple(f for e in estimates for f in e.segment_frames), None
    total = dataclasses.replace(estimates[0], segment_frames=frames, seconds_per_frame=base, warmup=0)
    print(f"batch: {len(estimates)} files on one pool", flush=True)
    print("\n".join(f"  {line}" for line in total.describe().splitlines()), flush=True)


def _render(
    files: list[BatchFile],
    args: argparse.Namespace,
    record: Record,
    notify: Callable[[str], None],
    lines: Callable[[str], None],
) -> None:
    """Plan every file, then render the segments of all on one pool (``lines``: where each segment's lines
    go, ``notify`` the notices said once)."""
    progress = Progress(enabled=not args.quiet)
    with contextlib.ExitStack() as stack:
        for file in files:
            stack.enter_context(orchestrator._script_file(file.request, notify))
            stack.callback(file.locks.close)
        first = _plan_all(files, stack, notify)
        planned = [f for f in files if not f.result]
        queue = [s for f in planned for s in sorted(f.left, key=lambda s: s.index)]
        done = sum(f.frames for f in planned) - sum(s.frames for s in queue)
        for file in [f for f in planned if not f.left]:  # every segment finished before: join now
            try:
                _finish(file, record, notify)
            except (CliError, EncodeError, OSError) as exc:
                file.result = f"failed: {exc}"
                notify(f"{file.name}: {file.result}; the other files go on")
        if not queue:
            return
        request = planned[0].request  # the pool's workers start with its script
        if first is None:  # the last file's script ended the planning worker
            first = stack.enter_context(orchestrator._first_worker(request, notify))
        batch = _Batch(files, record, progress, notify)
        with orchestrator._pool(request, request.parallel, first, notify, len(queue)) as pool:
            orchestrator._run_jobs(pool, queue, batch.attempt, batch.done, progress, lines, done,
                                   sum(f.frames for f in planned), batch.failed,
                                   max_attempts=request.settings["max_attempts"])  # fmt: skip


def _plan_all(
    files: list[BatchFile], stack: contextlib.ExitStack, notify: Callable[[str], None]
) -> LocalWorker | None:
    """Each file's plan, made on one worker that evaluates each file's script in turn (as the single encode
    plans: a resumed work folder's manifest, else a new plan); a file that cannot be planned is failed, the
    others go on. The worker the planning ended with (None: the last script ended it)."""
    first: LocalWorker | None = None
    for index, file in enumerate(files):
        request = file.request
        try:
            if first is None:
                first = stack.enter_context(orchestrator._first_worker(request, notify))
            else:
                first.load(request.script)
            _plan(index, file, first, notify)
        except WorkerFailed as exc:  # the worker ends with the script that failed
            assert first is not None
            first.close()
            first = None
            file.result = f"failed: script failed ({exc})"
            file.locks.close()
        except (CliError, EncodeError) as exc:
            file.result = f"failed: {exc}"
            file.locks.close()
        if file.result:
            notify(f"{file.name}: {file.result}; the other files go on")
    return first


def _plan(index: int, file: BatchFile, first: LocalWorker, notify: Callable[[str], None]) -> None:
    request = file.request
    folder = work_folder(request.output)
    check_folder(folder)
    resume = folder.exists() and not request.restart
    manifest = load(folder, orchestrator.fingerprint(request)) if resume else None
    segments = manifest.segments if manifest else make_plan(first, *orchestrator._range(request))
    if len(segments) == 1 and manifest is None:
        if folder.exists():  # --restart of a run that was split before
            with locked(folder, True, notify):
                shutil.rmtree(folder)
    else:
        file.locks.enter_context(locked(folder, request.restart, notify))
        manifest = manifest or orchestrator._new_manifest(request, folder, segments)
        last = request.end if request.end is not None else first.frames - 1
        manifest.check_covers(request.start, last)
    pending = manifest.pending(notify) if manifest else segments
    if manifest:
        if len(pending) < len(segments):
            notify(
                f"{file.name}: resuming: {len(segments) - len(pending)} of {len(segments)} segments already done"
            )
        remove_leftovers(folder, {segment_file(folder, s.index) for s in segments if s not in pending})
    orchestrator._warmup(first, request, pending, notify)
    file.manifest = manifest
    file.segments = [FileSegment(s.index, s.first, s.last, index, file.name) for s in segments]
    file.left = {FileSegment(s.index, s.first, s.last, index, file.name) for s in pending}


class _Batch:
    """The callbacks of the batch's one ``_run_jobs``: each file's jobs, its segments recorded and the file
    finished once its last is in, a failure kept to its file."""

    def __init__(
        self, files: list[BatchFile], record: Record, progress: Progress, notify: Callable[[str], None]
    ):
        self.files = {f.segments[0].file: f for f in files if f.segments}
        self.record, self.progress, self.notify = record, progress, notify
        self.count = len(files)
        self._label()

    def _label(self) -> None:
        ended = self.count - len([f for f in self.files.values() if not f.result])
        current = [f.name for f in self.files.values() if f.started and not f.result]
        self.progress.label = " ".join(["upscaling", f"[{ended}/{self.count} files]", *current[:1], *(
            [f"(+{len(current) - 1} more)"] if len(current) > 1 else [])])  # fmt: skip

    def attempt(self, segment: Segment, number: int) -> Job:
        assert isinstance(segment, FileSegment)
        file = self.files[segment.file]
        file.began = file.began or time.monotonic()
        file.started.add(segment)
        request = file.request
        job = (orchestrator.segment_job(request, file.manifest, segment, number) if file.manifest
               else orchestrator.whole_job(request, segment, number))  # fmt: skip
        self._label()
        return dataclasses.replace(job, script=request.script)

    def done(self, job: Job, result: Result) -> None:
        segment = job.segment
        assert isinstance(segment, FileSegment) and result.frames is not None
        file = self.files[segment.file]
        file.left.discard(segment)
        try:
            if file.manifest is not None:
                file.manifest.finish(segment, result.frames)
            if not file.left and not file.result:
                _finish(file, self.record, self.notify)
        except (CliError, EncodeError, OSError) as exc:
            self._fail(file, str(exc))
        self._label()

    def failed(self, job: Job, error: EncodeError) -> list[Segment]:
        assert isinstance(job.segment, FileSegment)
        file = self.files[job.segment.file]
        for line in error.tail:
            print(f"  {error.side}| {printable(line)}", file=sys.stderr)
        self._fail(file, str(error))
        dropped = list(file.left)
        file.left.clear()
        self._label()
        return dropped

    def _fail(self, file: BatchFile, why: str) -> None:
        file.result = f"failed: {why}"
        file.seconds = time.monotonic() - (file.began or time.monotonic())
        self.notify(f"{file.name}: {file.result}; the other files go on")


def _finish(file: BatchFile, record: Record, notify: Callable[[str], None]) -> None:
    """Join a segmented file, verify it and move it into place, then record it as finished."""
    request = file.request
    if file.manifest is not None:
        orchestrator.join_segments(request, file.manifest)
        file.locks.close()
        shutil.rmtree(file.manifest.folder)
    record.add(request.output, orchestrator.fingerprint(request))
    file.seconds = time.monotonic() - (file.began or time.monotonic())
    file.result = "done"
    notify(f"{file.name}: done in {file.seconds:.1f} s, wrote {request.output}")


def _summary(files: list[BatchFile], refused: list[tuple[str, str]]) -> None:
    """The table on stdout: file, frames, time, result (a refused file: "refused", its line is above)."""
    rows = [
        (
            f.name,
            str(f.frames) if f.segments else "-",
            format_duration(f.seconds) if f.began is not None else "-",
            f.result or "not run",
        )
        for f in files
    ]
    rows += [(name, "-", "-", "refused") for name, _ in refused]  # fmt: skip
    width = max([4, *(len(printable(name)) for name, *_ in rows)])
    lines = [f"{'file':<{width}}  {'frames':>7}  {'time':>8}  result"]
    lines += [
        f"{printable(name):<{width}}  {frames:>7}  {time:>8}  {printable(result)}"
        for name, frames, time, result in rows
    ]
    print("\n".join(lines), flush=True)
