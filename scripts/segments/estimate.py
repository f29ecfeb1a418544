"""How long an encode takes: one pure calculation for ``preview``'s estimate, ``encode --dry-run`` and the ETA.

Segments go to workers longest first, each to the worker that frees up first (what a pool of workers taking
the next segment does, up to the order); a worker costs ``seconds_per_worker_start`` once (process start,
model load) and every segment ``seconds_per_segment`` (its own start-up: source seek, encoder start, join).
Workers that share the CPU's cores each run ``shared`` times slower (``cpu_sharing``); several local workers
also start a Ray instance first.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamdiffvsr.cli.progress import format_duration
from streamdiffvsr.cli.segments.plan import usable_cores

if TYPE_CHECKING:
    from streamdiffvsr.cli.segments.speeds import Speed

# A segment's own cost beyond its frames (encoder start, verification, digest, its share of the join), measured
# end to end by bench/segment_overhead.py (BENCHMARKS.md); the worker's start is paid once per worker.
SEGMENT_SECONDS = 1.0
# Starting the private Ray instance of `--workers N` (N > 1) and its actors before they load the script
# (bench/preview_estimate.py, BENCHMARKS.md "Preview's estimate").
RAY_START_SECONDS = 8.0


def frame_seconds(model: float, encoder: float | None, device: str) -> float:
    """One worker's seconds per frame: the model and its encoder share the CPU's cores on a CPU device (their
    times add); with a GPU the encoder runs on the CPU beside it (the slower of the two sets the pace)."""
    if encoder is None:
        return model
    return model + encoder if device == "cpu" else max(model, encoder)


def cpu_sharing(device: str, workers: int, threads: int, cores: int) -> float:
    """How many times slower each of ``workers`` render processes runs than one alone, when each gives the
    networks ``threads`` CPU threads on a CPU with ``cores`` cores (1 on GPUs: one worker per GPU)."""
    if device != "cpu":
        return 1.0
    return max(1.0, workers * threads / max(1, cores))


@dataclass(frozen=True)
class Estimate:
    """The wall time of rendering ``segment_frames`` (frames per segment) on ``workers`` workers
    (``seconds_per_frame`` None: not measured, so the plan without times)."""

    segment_frames: tuple[int, ...]
    seconds_per_frame: float | None
    workers: int
    seconds_per_segment: float = 0.0
    seconds_per_worker_start: float = 0.0
    shared: float = 1.0  # each busy worker's slowdown when they share the CPU (``cpu_sharing``)
    warmup: int = 0  # frames rendered before the first segment's first (a --start inside a chain)
    speed_source: str = ""  # where the speed comes from, in words
    pool_start: float = 0.0  # seconds before the workers start (a local Ray instance)

    @property
    def frames(self) -> int:
        return sum(self.segment_frames)

    @property
    def busy_workers(self) -> int:
        return max(1, min(self.workers, len(self.segment_frames)))

    @property
    def slowdown(self) -> float:
        """Each busy worker's slowdown: ``shared`` when several share the CPU, else none."""
        return self.shared if self.busy_workers > 1 else 1.0

    def _costs(self) -> list[int]:
        """Frames each segment renders: the warm-up goes to the first."""
        return [frames + self.warmup * (index == 0) for index, frames in enumerate(self.segment_frames)]

    @property
    def render_seconds(self) -> float | None:
        """Compute time of all segments together (what one worker alone would take, start-up left out)."""
        if self.seconds_per_frame is None:
            return None
        return (
            sum(self._costs()) * self.seconds_per_frame + len(self.segment_frames) * self.seconds_per_segment
        )

    @property
    def wall_seconds(self) -> float | None:
        """From the start of rendering to the last segment done."""
        if self.seconds_per_frame is None:
            return None
        shared = self.slowdown
        finish = [self.pool_start + self.seconds_per_worker_start * shared] * self.busy_workers
        for frames in sorted(self._costs(), reverse=True):
            start = heapq.heappop(finish)
            heapq.heappush(
                finish, start + self.seconds_per_segment + frames * self.seconds_per_frame * shared
            )
        return max(finish)

    def describe(self, fps: float | None = None, device: str | None = None) -> str:
        """The short printable block: frames, speed, plan, wall time."""
        length = f" ({format_duration(self.frames / fps)} at {fps:g} fps)" if fps else ""
        count = len(self.segment_frames)
        plan = f"{count} segment{'s' * (count != 1)} on {self.busy_workers} worker{'s' * (self.busy_workers != 1)}"
        warmup = f" (+{self.warmup} of warm-up before the first)" if self.warmup else ""
        lines = [
            "estimate of the encode" + (f" on {device}" if device else "") + ":",
            f"  frames     {self.frames}{length}{warmup}",
        ]
        spf, wall = self.seconds_per_frame, self.wall_seconds
        if self.busy_workers > 1 and self.shared > 1:
            plan += f", sharing the CPU cores (each {self.shared:.1f}x slower)"
        if spf is None or wall is None:
            lines += [
                "  speed      not measured (`streamdiffvsr preview` with the same settings measures it)",
                f"  plan       {plan}",
            ]
        else:
            overhead = wall - self.render_seconds * self.slowdown / self.busy_workers
            source = f", {self.speed_source}" if self.speed_source else ""
            lines += [
                f"  speed      {spf:.3f} s/frame ({1 / max(spf, 1e-9):.2f} fps){source}",
                f"  plan       {plan}",
                f"  wall time  {format_duration(wall)}"
                + (f" (start-up and imbalance {format_duration(overhead)})" if overhead >= 0.5 else ""),
            ]
        return "\n".join(lines)


def encode_estimate(
    segments: tuple[int, ...],
    speed: Speed | None,
    workers: int,
    device: str,
    threads: int,
    warmup: int = 0,
    local: bool = True,
) -> Estimate:
    """The estimate of an encode of ``segments`` (frames each) on ``workers`` workers of this machine
    (``local``) or a cluster, at a measured ``speed`` (None: the plan alone)."""
    busy = max(1, min(workers, len(segments)))
    return Estimate(
        segments,
        speed.seconds_per_frame if speed else None,
        workers,
        seconds_per_segment=SEGMENT_SECONDS,
        seconds_per_worker_start=speed.start_seconds if speed else 0.0,
        shared=cpu_sharing(device.partition(":")[0], busy, threads, usable_cores()) if local else 1.0,
        warmup=warmup,
        speed_source=f"measured by {speed.measured}" if speed else "",
        pool_start=RAY_START_SECONDS if local and busy > 1 else 0.0,
    )


def even_split(frames: int, min_frames: int) -> tuple[int, ...]:
    """Segment lengths when the cuts are not known yet: one segment below twice ``min_frames`` (the encode's
    rule), else ``frames // min_frames`` equal segments (at most that many fit)."""
    count = 1 if frames < 2 * min_frames else frames // min_frames
    base, extra = divmod(frames, count)
    return tuple(base + (index < extra) for index in range(count))
