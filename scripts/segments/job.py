"""One segment of a segmented encode, rendered wherever a worker runs it: ``vspipe`` on the segment wrapper
(the script's output trimmed to the segment, its first frame checked to start a chain) into ffmpeg, then the
frame count verified with ffprobe (by the Pipeline) before the file is renamed into place."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.media.ffmpeg_cmd import segment_command
from streamdiffvsr.cli.media.probe import SourceInfo
from streamdiffvsr.cli.media.tools import require_encode_tools
from streamdiffvsr.cli.media.vpy import vspipe_command
from streamdiffvsr.cli.segments.pipeline import Pipeline, PipelineError
from streamdiffvsr.cli.segments.plan import Segment, wrapper_script
from streamdiffvsr.cli.settings.codecs import CODECS


class StorageError(Exception):
    """A node cannot read the input or write the work folder (they must be on storage every node sees)."""


@dataclass(frozen=True)
class SegmentJob:
    """Everything a worker needs for one segment (plain data: it travels to Ray workers)."""

    segment: Segment
    count: int  # segments in the whole plan, for messages
    script: Path
    vpy_args: dict[str, str]
    source: Path
    target: Path
    info: SourceInfo
    encoder: dict[str, Any]
    tag_colour: bool
    check_anchor: bool  # False for the first segment of a range that starts mid-chain (as the linear encode)


@dataclass(frozen=True)
class SegmentResult:
    """What came of a job: the verified frame count, or why it failed (and the failing side's last lines)."""

    frames: int | None
    error: str | None = None
    tail: tuple[str, ...] = ()
    node: str = ""
    seconds: float = 0.0


def _check_storage(job: SegmentJob, node: str) -> None:
    try:
        with job.source.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise StorageError(
            f"node {node} cannot read the input {job.source} ({exc.strerror or exc})"
        ) from None
    if not os.access(job.target.parent, os.W_OK | os.X_OK):
        raise StorageError(f"node {node} cannot write the work folder {job.target.parent}")


class _Silent:
    """Stands in for the progress bar when nobody watches this worker's own bar."""

    def update(self, done: int, total: int | None = None) -> None: ...
    def render(self) -> None: ...
    def clear(self) -> None: ...
    def finish(self) -> None: ...


def render_segment(job: SegmentJob, progress=None) -> SegmentResult:
    """Render and verify one segment into ``job.target``; never raises for a failure of the segment itself
    (a KeyboardInterrupt still propagates, after the children are stopped)."""
    node, began = socket.gethostname(), time.monotonic()
    segment = job.segment
    try:
        _check_storage(job, node)
        tools = require_encode_tools(CODECS[job.encoder["codec"]].encoder)
        args = {"seg_script": str(job.script), **job.vpy_args}
        if job.check_anchor:
            args["seg_first"] = str(segment.first)
        vspipe_args = vspipe_command(tools.vspipe, wrapper_script(), args, segment.first, segment.last)
        partial = job.target.with_name(f"{job.target.stem}.partial-{os.getpid()}{job.target.suffix}")
        ffmpeg_args = segment_command(tools.ffmpeg, job.info, partial, job.encoder, job.tag_colour)
        # Pipeline verifies the frame count with ffprobe before it renames the file into place.
        Pipeline(
            vspipe_args, ffmpeg_args, partial, job.target, progress or _Silent(), _quiet, tools.ffprobe
        ).run()
    except PipelineError as exc:
        return SegmentResult(None, str(exc).removesuffix("; no output was written"), tuple(exc.tail), node)
    except Exception as exc:  # storage, missing tools, anything else: reported and retried by the driver
        return SegmentResult(None, str(exc), node=node)
    return SegmentResult(segment.frames, node=node, seconds=time.monotonic() - began)


def _quiet(line: str) -> None:
    """The script's notices (model, filter options) were shown once already, when the segments were planned."""
