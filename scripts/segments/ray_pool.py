"""Segments in parallel on Ray: a local instance (``--workers N``, loopback only) or an existing cluster
(``--ray ADDRESS``). Ray is imported here only, when segments run in parallel; it schedules the segment tasks
(one GPU each on a cluster; on this machine one GPU each, or a share of the cores), and the driver retries a
segment whose worker failed or died, elsewhere when Ray can."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.segments.job import SegmentJob, SegmentResult, render_segment
from streamdiffvsr.cli.segments.ray_local import LOOPBACK_ENV

POLL_S = 0.25
REPORT_EVERY_S = 0.5
START_TIMEOUT_S = 120.0


class ProgressBoard:
    """A Ray actor: the frames each running segment has done, reported by the workers, read by the driver."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}

    def report(self, index: int, done: int) -> None:
        self.done[index] = done

    def snapshot(self) -> dict[int, int]:
        return dict(self.done)


class _Reporter:
    """The progress a segment's Pipeline feeds, forwarded to the board at most every REPORT_EVERY_S."""

    def __init__(self, board: Any, index: int) -> None:
        self.board, self.index, self.sent_at = board, index, 0.0
        board.report.remote(index, 0)

    def update(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.sent_at >= REPORT_EVERY_S or done == total:
            self.sent_at = now
            self.board.report.remote(self.index, done)

    def render(self) -> None: ...
    def clear(self) -> None: ...
    def finish(self) -> None: ...


def _remote_segment(job: SegmentJob, board: Any) -> SegmentResult:
    """What a Ray worker runs for one segment."""
    import ray

    result = render_segment(job, _Reporter(board, job.segment.index))
    node = ray.util.get_node_ip_address()
    return dataclasses.replace(result, node=f"{result.node} ({node})")


@contextlib.contextmanager
def local_instance(cpus: int, gpus: int) -> Iterator[str]:
    """A Ray head on 127.0.0.1 for this encode (see ray_local), stopped when the block ends or we die."""
    guardian = subprocess.Popen(
        [sys.executable, "-m", "streamdiffvsr.cli.segments.ray_local", str(cpus), str(gpus)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = guardian.stdout.readline().strip()
        if not line or line.startswith("error"):
            raise CliError(f"cannot start a local Ray instance for --workers ({line or 'no address'})")
        yield line
    finally:
        guardian.stdin.close()  # it stops Ray and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            guardian.wait(START_TIMEOUT_S)


def connect(address: str, local: bool) -> None:
    """Join the Ray cluster at ``address`` with its token authentication (never switched off here)."""
    loopback = local or address.split(":")[0] in ("127.0.0.1", "localhost")
    for name, value in LOOPBACK_ENV.items():
        if loopback or name == "RAY_AUTH_MODE":  # a cluster on loopback: this driver must be reachable there
            os.environ.setdefault(name, value)
    import ray

    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise CliError(f"cannot join the Ray cluster at {address}: {exc}") from None


def run_parallel(
    jobs: list[SegmentJob],
    workers: int | None,
    on_progress: Callable[[dict[int, int]], None],
    on_result: Callable[[SegmentJob, SegmentResult, int], bool],
) -> None:
    """Run ``jobs`` as Ray tasks on the cluster ``connect`` joined: ``workers`` at once on this machine (a
    share of the cores or one GPU each), or one GPU each on a cluster (``workers`` None). ``on_result(job,
    result, attempt)`` returns whether to try the job again."""
    import ray

    if workers is None:
        resources: dict[str, Any] = {"num_gpus": 1}
    elif int(ray.cluster_resources().get("GPU", 0)) > 0:
        resources = {"num_gpus": 1, "num_cpus": 1}
    else:
        resources = {"num_cpus": max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)}
    task = ray.remote(_remote_segment)
    board = ray.remote(ProgressBoard).options(num_cpus=0).remote()
    attempts: dict[int, int] = {}
    running: dict[Any, SegmentJob] = {}

    def submit(job: SegmentJob, spread: bool) -> None:
        attempts[job.segment.index] = attempts.get(job.segment.index, 0) + 1
        spreading = {"scheduling_strategy": "SPREAD"} if spread else {}
        running[task.options(max_retries=0, **resources, **spreading).remote(job, board)] = job

    try:
        for job in jobs:
            submit(job, spread=False)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            on_progress(ray.get(board.snapshot.remote()))
            for ref in ready:
                job = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    result = SegmentResult(None, f"its worker died ({type(exc).__name__})")
                if on_result(job, result, attempts[job.segment.index]):
                    submit(job, spread=True)
    finally:
        for ref in running:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        ray.shutdown()
