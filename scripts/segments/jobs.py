"""The units of work of an encode, shared by the plan, the pools and the workers: what a render process
evaluates (``ScriptSpec``), a range of its frames (``Segment``), one attempt at encoding them (``Job``) and what
came of it (``Result``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    """Output frames ``first`` .. ``last`` (inclusive) of the script, encoded into their own file."""

    index: int
    first: int
    last: int

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    def describe(self, count: int) -> str:
        return f"segment {self.index + 1}/{count} (frames {self.first}-{self.last})"


@dataclass(frozen=True)
class ScriptSpec:
    """What every render process of one encode evaluates, identically: the script, its ``--arg`` values, and
    the CPU threads of the networks (torch rounds differently with another count, so it is never left to the
    process: see ``plan.render_threads``)."""

    path: Path
    args: dict[str, str]
    threads: int


@dataclass(frozen=True)
class Job:
    """Frames ``segment.first .. segment.last`` of the script into ffmpeg (``ffmpeg_args``: everything after
    the executable, writing ``partial``, this attempt's own name), verified; the orchestrator then moves it
    to ``target`` (only the attempt it accepted: a worker cut off but alive cannot replace a retry's)."""

    segment: Segment
    count: int  # segments in the plan, for messages
    ffmpeg_args: tuple[str, ...]
    partial: Path
    target: Path
    check_anchor: (
        bool  # the first frame must start a chain of the filter (a split anywhere else is not exact)
    )
    overwrite: bool = True  # False: never replace a target someone else created meanwhile
    script: ScriptSpec | None = None  # a batch's: the file's script (None: the one the worker evaluated)

    def describe(self) -> str:
        return self.segment.describe(self.count) if self.count > 1 else "the encode"


@dataclass(frozen=True)
class Result:
    """What came of a job: its verified frame count, or why it failed (``side``: the script or ffmpeg, with the
    last lines it printed), and whether another try can help (a worker that died or a node without the tools:
    yes; the script's or ffmpeg's own failure, or a full disk: no)."""

    frames: int | None
    error: str = ""
    side: str = ""
    tail: tuple[str, ...] = ()
    retryable: bool = True
    node: str = ""
    seconds: float = 0.0
