"""Where jobs run: the ``Pool`` protocol the orchestrator drives, and ``LocalPool``, one worker process on
this machine (``ray_pool.RayPool`` is the other: Ray actors on a local instance or a cluster)."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Protocol

from streamdiffvsr.cli.segments.jobs import Job, Result, ScriptSpec, Segment
from streamdiffvsr.cli.segments.worker import LocalWorker


class Pool(Protocol):
    """Workers that each keep the script (and model) loaded and render one job at a time."""

    def idle(self) -> int:
        """How many more jobs can start now."""

    def submit(self, job: Job) -> None: ...

    def wait(self, timeout: float) -> list[tuple[Job, Result]]:
        """The jobs that ended within ``timeout`` seconds (possibly none), with their results."""

    def progress(self) -> dict[Segment, int]:
        """Frames done so far by each running job, by its segment."""

    def close(self) -> None:
        """Stop every worker (also mid-job); nothing of the pool keeps running."""


class LocalPool:
    """One worker process here (the one that planned, so the script is evaluated once); if it dies, the next
    job starts a new one."""

    def __init__(
        self, worker: LocalWorker, spec: ScriptSpec, notify: Callable[[str], None], label: str
    ) -> None:
        self.worker, self.spec, self.notify, self.label = worker, spec, notify, label
        self.job: Job | None = None
        self.done = 0

    def idle(self) -> int:
        return 0 if self.job is not None else 1

    def submit(self, job: Job) -> None:
        if self.worker is None:
            self.worker = LocalWorker(self.spec, self.notify, self.label)
        self.job, self.done = job, 0
        self.worker.submit(job)

    def wait(self, timeout: float) -> list[tuple[Job, Result]]:
        try:
            kind, value = self.worker.wait_event(timeout)
        except queue.Empty:
            return []
        if kind == "progress":
            self.done = value
            return []
        job, self.job = self.job, None
        if kind == "result":
            return [(job, value)]
        tail = tuple(self.worker.child.tail)
        self.worker.close()
        self.worker = None
        return [(job, Result(None, value, "worker", tail))]

    def progress(self) -> dict[Segment, int]:
        return {self.job.segment: self.done} if self.job is not None else {}

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
