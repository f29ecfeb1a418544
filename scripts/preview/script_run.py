"""The generated script run in this process, as the encode's render workers run it: its output frames as the
encode receives them, the filter's source, where chains start, and how long each step took."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import vapoursynth as vs

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.segments.jobs import ScriptSpec
from streamdiffvsr.cli.segments.worker import EvaluatedScript
from streamdiffvsr.vsfilter import ANCHOR_PROP
from streamdiffvsr.vsfilter.server import FrameServer

UNTIMED = 2


class ScriptFailed(CliError):
    """The generated script or the filter failed (a failed run, as when a render worker of the encode fails)."""

    exit_code = 1


def last_line(exc: Exception) -> str:
    """An exception's last message line (a vs.Error carries the filter's whole message), with its type when it
    is not VapourSynth's."""
    lines = str(exc).strip().splitlines() or [""]
    return lines[-1] if isinstance(exc, vs.Error) else f"{type(exc).__name__}: {lines[-1]}"


def to_rgb24(clip: vs.VideoNode) -> vs.VideoNode:
    """8-bit RGB for the eye: YUV through the matrix and range its frames are tagged with (what a player does),
    float RGB clamped and rounded."""
    return vs.core.resize.Bicubic(clip, format=vs.RGB24)


def rgb_array(frame: vs.VideoFrame) -> np.ndarray:
    """An RGB24 frame as an (h, w, 3) uint8 array."""
    return np.stack([np.asarray(frame[plane]) for plane in range(3)], axis=-1)


@dataclass
class Timing:
    """Seconds spent in requests and the model steps they ran, from the ``UNTIMED`` + 1st request on (the first
    frame of a chain and the first with temporal guidance carry one-off costs: the model's load, allocations)."""

    seconds: float = 0.0
    steps: int = 0
    requests: int = 0

    @property
    def seconds_per_frame(self) -> float | None:
        return self.seconds / self.steps if self.steps else None


@dataclass
class ScriptRun:
    """One script evaluated in this process by the encode's own ``EvaluatedScript`` (same evaluation, same CPU
    threads): its output clip and the filter's frame server."""

    output: vs.VideoNode
    server: FrameServer
    timing: Timing = field(default_factory=Timing)

    def __post_init__(self) -> None:
        self.display = to_rgb24(self.output)

    @classmethod
    def start(cls, script: ScriptSpec) -> ScriptRun:
        """Evaluate ``script`` as a render worker of the encode does (the working directory is kept)."""
        try:
            with contextlib.chdir(os.getcwd()):
                evaluated = EvaluatedScript(script)
        except (
            Exception
        ) as exc:  # as a failed worker: whatever the script raises ends the run with its message
            raise ScriptFailed(f"the script failed: {last_line(exc)}") from None
        if evaluated.server is None:
            raise CliError("the script has no stream_diffvsr filter to preview")
        return cls(evaluated.clip, evaluated.server)

    @property
    def source(self) -> vs.VideoNode:
        """The filter's input: the source in float RGB."""
        return self.server.clip

    def frames(self, first: int, last: int) -> Iterator[tuple[np.ndarray, int]]:
        """Output frames ``first`` .. ``last`` as the encode receives them (requested ahead, as the encode
        requests them), shown as RGB24, each with its chain's anchor. Timed as one request."""
        timed = self.timing.requests >= UNTIMED
        self.timing.requests += 1
        steps, began = self.server.steps_run, time.perf_counter()
        n = first
        try:
            for n, frame in enumerate(self.display[first : last + 1].frames(), start=first):
                yield rgb_array(frame), int(frame.props.get(ANCHOR_PROP, n))
        except Exception as exc:
            raise ScriptFailed(f"frame {n}: {last_line(exc)}") from None
        if timed:
            self.timing.seconds += time.perf_counter() - began
            self.timing.steps += self.server.steps_run - steps

    def frame(self, n: int) -> tuple[np.ndarray, int]:
        """Output frame n (see ``frames``)."""
        return [*self.frames(n, n)][0]

    def chain_starts(self, first: int, last: int) -> list[int]:
        """The chain starts in ``first`` .. ``last`` (``Chains.starts``: the filter's own rule and scan)."""
        return self.server.chains.starts(first, last)

    def anchor_of(self, n: int) -> int:
        """Where frame n's chain starts (the filter's own rule; no model step)."""
        return self.server.chains.anchor(n)
