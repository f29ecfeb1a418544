"""The generated script run in this process (VapourSynth's Python API, no vspipe): its output frames as the
encode receives them, the filter's source, where chains start, and how long each step took."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import vapoursynth as vs

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.vsfilter import ANCHOR_PROP
from streamdiffvsr.vsfilter.filter import live_frame_servers
from streamdiffvsr.vsfilter.scenes import chain_anchor
from streamdiffvsr.vsfilter.server import FrameServer

UNTIMED = 2


class ScriptFailed(CliError):
    """The generated script or the filter failed (a failed run, as when the encode's vspipe fails)."""

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
    frame of a chain and the first with temporal guidance carry one-off costs: allocations, flow set-up)."""

    seconds: float = 0.0
    steps: int = 0
    requests: int = 0

    @property
    def seconds_per_frame(self) -> float | None:
        return self.seconds / self.steps if self.steps else None


@dataclass
class ScriptRun:
    """One generated script evaluated in-process: its output clip and the filter's frame server."""

    output: vs.VideoNode
    server: FrameServer
    timing: Timing = field(default_factory=Timing)

    def __post_init__(self) -> None:
        self.display = to_rgb24(self.output)

    @classmethod
    def start(cls, script_text: str, vpy_args: dict[str, str]) -> ScriptRun:
        """Evaluate ``script_text`` with vspipe's ``--arg`` globals, as ``vspipe`` would."""
        before = set(live_frame_servers())
        scope: dict[str, object] = {"__name__": "__vapoursynth__", **vpy_args}
        try:
            exec(compile(script_text, "<generated script>", "exec"), scope)
        except Exception as exc:  # as vspipe: whatever the script raises ends the run with its message
            raise ScriptFailed(f"the script failed: {last_line(exc)}") from None
        output = vs.get_output(0)
        vs.clear_output(0)
        servers = [server for server in live_frame_servers() if server not in before]
        if len(servers) != 1:
            raise CliError("the script has no stream_diffvsr filter to preview")
        return cls(getattr(output, "clip", output), servers[0])

    @property
    def source(self) -> vs.VideoNode:
        """The filter's input: the source in float RGB."""
        return self.server.clip

    def frame(self, n: int) -> tuple[np.ndarray, int]:
        """Output frame n as the encode receives it, shown as RGB24, and its chain's anchor."""
        steps, began = self.server.steps_run, time.perf_counter()
        try:
            frame = self.output.get_frame(n)
            rgb = rgb_array(self.display.get_frame(n))
        except Exception as exc:
            raise ScriptFailed(f"frame {n}: {last_line(exc)}") from None
        if self.timing.requests >= UNTIMED:
            self.timing.seconds += time.perf_counter() - began
            self.timing.steps += self.server.steps_run - steps
        self.timing.requests += 1
        return rgb, int(frame.props.get(ANCHOR_PROP, n))

    def chain_starts(self, first: int, last: int) -> list[int]:
        """The chain starts in ``first`` .. ``last`` that follow a cut seen in that range (a ``max_chain`` restart
        needs its scene's start)."""
        scenes, starts, scene = self.server.scenes, [], None
        for k in range(first, last + 1):
            if scenes.is_cut(k):
                scene = k
            if scene is not None and chain_anchor(k, scene, self.server.max_chain) == k:
                starts.append(k)
        return starts

    def anchor_of(self, n: int) -> int:
        """Where frame n's chain starts (a walk back to its scene's cut, as the filter does; no model step)."""
        scene = n
        while not self.server.scenes.is_cut(scene):
            scene -= 1
        return chain_anchor(n, scene, self.server.max_chain)
