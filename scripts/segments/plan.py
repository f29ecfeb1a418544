"""The plan of an encode: which frames, in how many segments, rendered with how many CPU threads.

One place decides it (``make_plan``): a range too short to split, or a script without a single filter to split
at, is one segment, encoded straight into OUTPUT; a longer one is split at the filter's chain starts (scene cuts
and ``max_chain`` restarts, found by the worker's scan, without the model), so each segment renders exactly the
frames the one-segment encode renders.
"""

from __future__ import annotations

import os
from typing import Protocol

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.segments.jobs import Segment


def split(starts: list[int], first: int, last: int, min_frames: int) -> list[Segment]:
    """Segments covering ``first`` .. ``last``, each starting at ``first`` or at a chain start, each at least
    ``min_frames`` long (unless the whole range is shorter: then it is one segment)."""
    bounds = [first]
    for start in sorted(starts):
        if start - bounds[-1] >= min_frames and last + 1 - start >= min_frames:
            bounds.append(start)
    ends = [b - 1 for b in bounds[1:]] + [last]
    return [Segment(i, a, b) for i, (a, b) in enumerate(zip(bounds, ends, strict=True))]


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) or os.cpu_count() or 1


def render_threads(setting: int | None) -> int:
    """The CPU threads every render process gives the networks: ``segment.threads``, else the cores this
    process may use. Fixed per encode (and recorded for a resume), since torch's CPU kernels round differently
    with another thread count: a segmented encode is bit for bit the one-segment encode only with the same."""
    return setting or usable_cores()


def worker_count(
    asked: int | None, cuda_devices: int, on_cluster: bool = False, jobs: int | None = None
) -> int:
    """The one rule for how many workers render: ``--workers`` if given, else one per CUDA device of this
    machine (at least one); on a cluster without --workers one per GPU there, counted when it runs (1 until
    then); never more than the ``jobs`` there are."""
    count = asked or (1 if on_cluster else max(1, cuda_devices))
    return min(count, jobs) if jobs is not None else count


class ChainScanner(Protocol):
    frames: int

    def chain_starts(self, last: int) -> list[int] | None: ...


def make_plan(scanner: ChainScanner, start: int, end: int | None, min_frames: int) -> list[Segment]:
    """The segments of frames ``start`` .. ``end`` (default: the script's last) of the script ``scanner``
    evaluated: one if the range is shorter than two segments or the script cannot be split, else split at
    its chain starts."""
    last = scanner.frames - 1 if end is None else end
    if start > last:
        raise CliError(f"--start {start} is beyond the script's last frame ({scanner.frames - 1})")
    if last >= scanner.frames:
        raise CliError(f"--end {last} is beyond the script's last frame ({scanner.frames - 1})")
    if last - start + 1 < 2 * min_frames:
        return [Segment(0, start, last)]
    starts = scanner.chain_starts(last)
    return split(starts or [], start, last, min_frames)
