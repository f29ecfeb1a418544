"""How long an encode takes: one pure calculation for ``preview``'s estimate, ``encode --dry-run`` and the ETA.

Segments go to workers longest first, each to the worker that frees up first (what a pool of workers taking
the next segment does, up to the order); a worker costs ``seconds_per_worker_start`` once (process start,
model load) and every segment ``seconds_per_segment`` (its own start-up: source seek, encoder start, join).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from streamdiffvsr.cli.progress import format_duration

# A segment's own cost beyond its frames (encoder start, verification, digest, its share of the join), measured
# end to end by bench/segment_overhead.py (BENCHMARKS.md); the worker's start is paid once per worker.
SEGMENT_SECONDS = 1.0


@dataclass(frozen=True)
class Estimate:
    """The wall time of rendering ``segment_frames`` (frames per segment) on ``workers`` workers
    (``seconds_per_frame`` None: not measured, so the plan without times)."""

    segment_frames: tuple[int, ...]
    seconds_per_frame: float | None
    workers: int
    seconds_per_segment: float = 0.0
    seconds_per_worker_start: float = 0.0

    @property
    def frames(self) -> int:
        return sum(self.segment_frames)

    @property
    def busy_workers(self) -> int:
        return max(1, min(self.workers, len(self.segment_frames)))

    @property
    def render_seconds(self) -> float | None:
        """Compute time of all segments together (what one worker would take, start-up left out)."""
        if self.seconds_per_frame is None:
            return None
        return self.frames * self.seconds_per_frame + len(self.segment_frames) * self.seconds_per_segment

    @property
    def wall_seconds(self) -> float | None:
        """From the start of rendering to the last segment done."""
        if self.seconds_per_frame is None:
            return None
        finish = [self.seconds_per_worker_start] * self.busy_workers
        for frames in sorted(self.segment_frames, reverse=True):
            start = heapq.heappop(finish)
            heapq.heappush(finish, start + self.seconds_per_segment + frames * self.seconds_per_frame)
        return max(finish)

    def describe(self, fps: float | None = None, device: str | None = None) -> str:
        """The short printable block: frames, speed, plan, wall time."""
        length = f" ({format_duration(self.frames / fps)} at {fps:g} fps)" if fps else ""
        count = len(self.segment_frames)
        plan = f"{count} segment{'s' * (count != 1)} on {self.busy_workers} worker{'s' * (self.busy_workers != 1)}"
        lines = [
            "estimate of the encode" + (f" on {device}" if device else "") + ":",
            f"  frames     {self.frames}{length}",
        ]
        spf, wall = self.seconds_per_frame, self.wall_seconds
        if spf is None or wall is None:
            lines += [
                "  speed      not measured (`streamdiffvsr preview` measures it)",
                f"  plan       {plan}",
            ]
        else:
            overhead = wall - self.render_seconds / self.busy_workers
            lines += [
                f"  speed      {spf:.3f} s/frame ({1 / max(spf, 1e-9):.2f} fps)",
                f"  plan       {plan}",
                f"  wall time  {format_duration(wall)}"
                + (f" (start-up and imbalance {format_duration(overhead)})" if overhead >= 0.5 else ""),
            ]
        return "\n".join(lines)


def even_split(frames: int, min_frames: int) -> tuple[int, ...]:
    """Segment lengths when the cuts are not known yet: one segment below twice ``min_frames`` (the encode's
    rule), else ``frames // min_frames`` equal segments (at most that many fit)."""
    count = 1 if frames < 2 * min_frames else frames // min_frames
    base, extra = divmod(frames, count)
    return tuple(base + (index < extra) for index in range(count))
