"""The orchestrator's one retry policy, its ETA and what it moves into place (``orchestrator._run_jobs``) against a
scripted pool that writes real files, and the plan (``plan.make_plan``) against a scripted chain scan: no process,
no model, milliseconds. The end-to-end tests (tests/test_cli_segments.py) keep what only real workers show: a
killed worker or Ray actor is retried and the frames stay identical."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from streamdiffvsr.cli.errors import CliError, EncodeError
from streamdiffvsr.cli.segments.estimate import SEGMENT_SECONDS, Estimate
from streamdiffvsr.cli.segments.jobs import Job, Result, Segment
from streamdiffvsr.cli.segments.orchestrator import _run_jobs
from streamdiffvsr.cli.segments.partials import attempt_partial
from streamdiffvsr.cli.segments.plan import make_plan

SEGMENT_FRAMES = 10
MAX_ATTEMPTS = 3  # segment.max_attempts' default


class ScriptedPool:
    """``workers`` slots; each submitted job ends at the next ``wait`` with the next scripted result of its
    segment (default: done, its partial written as a worker would)."""

    def __init__(self, workers: int, script: dict[int, list[Result]] | None = None) -> None:
        self.workers = workers
        self.script = {index: deque(results) for index, results in (script or {}).items()}
        self.running: list[Job] = []
        self.submitted: list[int] = []
        self.most_at_once = 0

    def idle(self) -> int:
        return self.workers - len(self.running)

    def submit(self, job: Job) -> None:
        self.running.append(job)
        self.submitted.append(job.segment.index)
        self.most_at_once = max(self.most_at_once, len(self.running))

    def wait(self, timeout: float) -> list[tuple[Job, Result]]:
        ended, self.running = self.running, []
        return [(job, self._result(job)) for job in ended]

    def _result(self, job: Job) -> Result:
        scripted = self.script.get(job.segment.index)
        if scripted:
            return scripted.popleft()
        job.partial.write_text(job.partial.name)
        return Result(job.segment.frames, node="n1", seconds=1.0)

    def progress(self) -> dict[Segment, int]:
        return {}

    def close(self) -> None:
        self.running = []


class Recorder:
    """A ``ProgressSink`` that keeps what it was told."""

    def __init__(self) -> None:
        self.eta = None
        self.done: list[int] = []
        self.total: int | None = None

    def update(self, done: int, total: int | None = None) -> None:
        self.done.append(done)
        self.total = total if total is not None else self.total

    def draw(self) -> None: ...

    def clear(self) -> None: ...

    def finish(self) -> None: ...


@pytest.fixture(autouse=True)
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the jobs write (the working directory: ``attempt`` names files relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def segments(count: int) -> list[Segment]:
    return [Segment(i, i * SEGMENT_FRAMES, (i + 1) * SEGMENT_FRAMES - 1) for i in range(count)]


def attempts(count: int) -> Callable[[Segment, int], Job]:
    """Attempt n at a segment of ``count``: it writes pINDEX[-n].nut, moved to tINDEX.nut when accepted."""

    def attempt(segment: Segment, number: int) -> Job:
        partial = attempt_partial(Path(f"p{segment.index}.nut").absolute(), number)
        return Job(segment, count, (), partial, Path(f"t{segment.index}.nut").absolute(), True)

    return attempt


def run(
    pool: ScriptedPool, count: int, max_attempts: int = MAX_ATTEMPTS
) -> tuple[list[int], list[str], Recorder]:
    finished: list[int] = []
    notices: list[str] = []
    progress = Recorder()
    _run_jobs(pool, segments(count), attempts(count), lambda job, result: finished.append(job.segment.index),
              progress, notices.append, max_attempts=max_attempts)  # fmt: skip
    return finished, notices, progress


def test_every_job_runs_once_on_the_workers_there_are() -> None:
    pool = ScriptedPool(workers=2)
    finished, notices, progress = run(pool, 5)
    assert sorted(finished) == list(range(5)) and pool.submitted == list(range(5))
    assert pool.most_at_once == 2
    assert progress.done[-1] == 5 * SEGMENT_FRAMES
    assert notices == [
        f"segment {i + 1}/5 (frames {10 * i}-{10 * i + 9}) done in 1.0 s on n1" for i in range(5)
    ]


def test_a_retryable_failure_is_tried_again_first_and_then_counts_once() -> None:
    died = Result(None, "its worker died", node="n2")
    pool = ScriptedPool(workers=1, script={1: [died]})
    finished, notices, _ = run(pool, 3)
    assert pool.submitted == [0, 1, 1, 2]  # the failed segment goes first again, not to the end
    assert sorted(finished) == [0, 1, 2]
    assert "segment 2/3 (frames 10-19) failed on n2 (its worker died); trying again" in notices


@pytest.mark.parametrize("max_attempts", [1, 5])
def test_the_number_of_attempts_is_the_setting(max_attempts: int) -> None:
    died = Result(None, "its worker died", node="n2")
    pool = ScriptedPool(workers=1, script={0: [died] * max_attempts})
    with pytest.raises(
        EncodeError, match=f"the worker failed{f' [(]{max_attempts} attempts' if max_attempts > 1 else ''}"
    ):
        run(pool, 2, max_attempts)
    assert pool.submitted == [0] * max_attempts


def test_a_retryable_failure_stops_the_encode_after_the_last_attempt() -> None:
    died = Result(None, "its worker died", tail=("last words",), node="n2")
    pool = ScriptedPool(workers=1, script={0: [died] * MAX_ATTEMPTS})
    with pytest.raises(EncodeError) as failure:
        run(pool, 2)
    assert pool.submitted == [0] * MAX_ATTEMPTS
    assert str(failure.value) == (
        f"segment 1/2 (frames 0-9): the worker failed ({MAX_ATTEMPTS} attempts; last on n2: its worker died); "
        "no output was written"
    )
    assert failure.value.tail == ["last words"]


def test_a_failure_another_try_cannot_mend_stops_at_once() -> None:
    full = Result(None, "No space left on device", side="ffmpeg", retryable=False)
    pool = ScriptedPool(workers=2, script={1: [full]})
    with pytest.raises(EncodeError, match=r"segment 2/3 \(frames 10-19\): ffmpeg failed \(No space left"):
        run(pool, 3)
    assert pool.submitted.count(1) == 1


def test_the_eta_counts_what_is_left_on_the_workers_there_are() -> None:
    """Seen at the first update: nothing done, three segments queued on two idle workers, 1 frame/s each."""
    pool = ScriptedPool(workers=2)
    seen: list[float | None] = []

    class FirstEta(Recorder):
        def update(self, done: int, total: int | None = None) -> None:
            if not seen and self.eta is not None:
                seen.append(self.eta(2.0))  # 2 frames/s over two workers
            super().update(done, total)

    _run_jobs(pool, segments(3), attempts(3), lambda job, result: None, FirstEta(), lambda text: None,
              max_attempts=MAX_ATTEMPTS)  # fmt: skip
    assert seen == [Estimate((10, 10, 10), 1.0, 2, SEGMENT_SECONDS).wall_seconds]


class Scanner:
    """A ``ChainScanner`` of a script with ``frames`` frames and these chain starts (None: no filter to split at)."""

    def __init__(self, frames: int, starts: list[int] | None) -> None:
        self.frames = frames
        self.starts = starts
        self.scanned: list[int] = []

    def chain_starts(self, last: int) -> list[int] | None:
        self.scanned.append(last)
        return self.starts


def test_the_plan_splits_at_chain_starts_only_when_two_segments_fit() -> None:
    scanner = Scanner(40, [0, 12, 20, 24, 33])  # 20: 8 after 12; 33: the tail would be 7
    assert make_plan(scanner, 0, None, 10) == [Segment(0, 0, 11), Segment(1, 12, 23), Segment(2, 24, 39)]
    assert scanner.scanned == [39]
    short = Scanner(40, [0, 12])
    assert (
        make_plan(short, 5, 20, 10) == [Segment(0, 5, 20)] and short.scanned == []
    )  # no scan for one segment
    assert make_plan(Scanner(40, None), 0, None, 10) == [Segment(0, 0, 39)]  # a script without the filter


def test_a_range_beyond_the_script_is_one_line() -> None:
    with pytest.raises(CliError, match=r"--start 40 is beyond the script's last frame \(39\)"):
        make_plan(Scanner(40, []), 40, None, 10)
    with pytest.raises(CliError, match=r"--end 40 is beyond the script's last frame \(39\)"):
        make_plan(Scanner(40, []), 0, 40, 10)


class CutOffPool(ScriptedPool):
    """Segment 1's first attempt is lost to the pool (its worker cut off: reported dead) while its writer lives
    on: when the retry has written its file, that writer writes its own again (a real second write) and its
    result comes in first, as a worker's whose node came back would."""

    def __init__(self) -> None:
        super().__init__(workers=2)
        self.stale: Job | None = None
        self.late = False

    def _result(self, job: Job) -> Result:
        if job.segment.index == 0 and self.stale is None:
            self.stale = job
            job.partial.write_text("the stale attempt, half written")
            return Result(None, "its worker died", node="n2")
        return super()._result(job)

    def wait(self, timeout: float) -> list[tuple[Job, Result]]:
        ended = super().wait(timeout)
        if any(job.segment.index == 0 and job is not self.stale for job, _ in ended):
            self.late = True
            self.stale.partial.write_text("the stale attempt, whole")
            ended.insert(0, (self.stale, Result(self.stale.segment.frames, node="n2", seconds=1.0)))
        return ended


def test_only_the_accepted_attempt_is_moved_into_place_a_stale_writer_changes_nothing(folder: Path) -> None:
    pool = CutOffPool()
    finished, notices, _ = run(pool, 2)
    assert pool.late and sorted(finished) == [0, 1], notices
    assert (folder / "t0.nut").read_text() == "p0-2.nut"  # the retry's own file, written under its own name
    assert sorted(path.name for path in folder.iterdir()) == ["t0.nut", "t1.nut"]  # the stale file removed
    assert [line for line in notices if "segment 1/2" in line] == [
        "segment 1/2 (frames 0-9) failed on n2 (its worker died); trying again",
        "segment 1/2 (frames 0-9) done in 1.0 s on n1",
    ]


def test_a_batchs_failure_drops_what_goes_with_it_and_the_rest_goes_on() -> None:
    """With ``on_failure`` (a batch), a job that fails for good hands its error there, the queued segments it
    returns (its file's) are dropped and leave the total, and every other segment is rendered."""
    broken = Result(None, "broken stream", "script", retryable=False)
    pool = ScriptedPool(workers=1, script={1: [broken]})
    finished: list[int] = []
    failures: list[str] = []
    progress = Recorder()

    def on_failure(job: Job, error: EncodeError) -> list[Segment]:
        failures.append(str(error))
        return segments(5)[1:3]  # segments 1 and 2 are one file's

    _run_jobs(pool, segments(5), attempts(5), lambda job, result: finished.append(job.segment.index), progress,
              [].append, on_failure=on_failure, max_attempts=MAX_ATTEMPTS)  # fmt: skip
    assert failures == ["segment 2/5 (frames 10-19): script failed (broken stream); no output was written"]
    assert pool.submitted == [0, 1, 3, 4] and finished == [0, 3, 4]
    assert progress.done[-1] == 3 * SEGMENT_FRAMES and progress.total == 3 * SEGMENT_FRAMES


@pytest.mark.parametrize(
    ("asked", "cuda_devices", "on_cluster", "jobs", "expected"),
    [(None, 0, False, None, 1), (None, 3, False, None, 3), (2, 3, False, None, 2), (None, 3, False, 2, 2),
     (None, 4, True, None, 1), (4, 0, True, 3, 3)],
)  # fmt: skip
def test_one_rule_counts_the_workers(asked, cuda_devices, on_cluster, jobs, expected) -> None:
    """--workers, else one per CUDA device here (at least one), a cluster's counted when it runs, never more
    than the jobs (the dry run, the pool and preview's estimate all ask it)."""
    from streamdiffvsr.cli.segments.plan import worker_count

    assert worker_count(asked, cuda_devices, on_cluster, jobs) == expected
