"""Where a segmented encode splits: at chain anchors of the filter, found by a scan of the script itself.

A segment starting where one of the filter's chains starts renders exactly the frames the linear encode
renders, so the boundaries come from the same scene cuts (and ``max_chain`` restarts) the filter finds: the
script runs once under ``segment.vpy`` (``vspipe --info``), which scans the filter's source frames.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.vpy import vspipe_command

WRAPPER = "segment.vpy"
SCAN_TAIL_LINES = 5


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


def wrapper_script() -> Path:
    """The installed ``segment.vpy`` that runs a script for planning or for one segment."""
    return Path(str(resources.files(__package__).joinpath(WRAPPER)))


def split(starts: list[int], first: int, last: int, min_frames: int) -> list[Segment]:
    """Segments covering ``first`` .. ``last``, each starting at ``first`` or at a chain start, each at least
    ``min_frames`` long (unless the whole range is shorter: then it is one segment)."""
    bounds = [first]
    for start in sorted(starts):
        if start - bounds[-1] >= min_frames and last + 1 - start >= min_frames:
            bounds.append(start)
    ends = [b - 1 for b in bounds[1:]] + [last]
    return [Segment(i, a, b) for i, (a, b) in enumerate(zip(bounds, ends, strict=True))]


@dataclass(frozen=True)
class Scan:
    """The script's frame count and its filter's chain starts (None: no single filter to split at)."""

    frames: int
    starts: list[int] | None


def scan_script(vspipe: str, script: Path, vpy_args: dict[str, str], last: int | None) -> Scan:
    """Run ``script`` under the wrapper (``vspipe --info``) and read where its chains start, up to ``last``."""
    with tempfile.TemporaryDirectory(prefix="streamdiffvsr-scan-") as scratch:
        plan = Path(scratch) / "plan.json"
        args = {
            "seg_script": str(script.absolute()),
            "seg_plan": str(plan),
            "seg_last": str(last if last is not None else 2**62),
            **vpy_args,
        }
        command = vspipe_command(vspipe, wrapper_script(), args)
        command[1:4] = ["--info"]  # no container, no progress: evaluate the script and stop
        result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
        if result.returncode != 0 or not plan.is_file():
            tail = " | ".join(result.stderr.strip().splitlines()[-SCAN_TAIL_LINES:])
            raise CliError(f"the script failed while planning the segments: {tail}")
        data = json.loads(plan.read_text(encoding="utf-8"))
    return Scan(int(data["frames"]), data["starts"])
