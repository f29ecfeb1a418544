"""The one home of the names of the files an encode writes before OUTPUT is complete: the hidden files beside
OUTPUT (``.NAME.partial-PID.ext``: the encode in progress and the generated script), the work folder of a
segmented encode and the segment files in it; and the cleanup of what a killed run (its PID gone) left behind."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path


def partial_path(output: Path, suffix: str | None = None, pid: int | None = None) -> Path:
    """The hidden name beside OUTPUT for this process (``suffix`` defaults to OUTPUT's own extension)."""
    pid = os.getpid() if pid is None else pid
    return output.with_name(f".{output.stem}.partial-{pid}{output.suffix if suffix is None else suffix}")


def work_folder(output: Path) -> Path:
    """The hidden folder beside OUTPUT that holds the segments until OUTPUT is complete."""
    return output.with_name(f".{output.name}.segments")


SEGMENT_SUFFIX = ".nut"  # NUT keeps each frame's exact time (Matroska rounds to 1 ms), every codec fits


def segment_file(folder: Path, index: int) -> Path:
    return folder / f"segment-{index:05d}{SEGMENT_SUFFIX}"


def segment_partial(folder: Path, index: int) -> Path:
    """Where a segment is written before it is verified (a retry writes it anew)."""
    return folder / f"segment-{index:05d}.partial{SEGMENT_SUFFIX}"


def joined_partial(folder: Path, output: Path) -> Path:
    """Where the joined segments are written before they are verified and moved to OUTPUT."""
    return folder / f"joined.partial{output.suffix}"


def move_into_place(partial: Path, target: Path, overwrite: bool) -> None:
    """Move a verified ``partial`` to ``target``. Without ``overwrite`` it is a link, which fails with
    FileExistsError if ``target`` appeared meanwhile (another run's OUTPUT is never replaced)."""
    if overwrite:
        os.replace(partial, target)
    else:
        os.link(partial, target)


def taken(target: Path) -> str:
    """Why a verified file was not moved to ``target``."""
    return f"{target} was created by someone else meanwhile; pass --overwrite to replace it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_dead_leftovers(output: Path) -> list[Path]:
    """Remove the partial files of OUTPUT whose run is dead (never a live run's); returns what was removed."""
    pattern = re.compile(rf"\.{re.escape(output.stem)}\.partial-(\d+)\.[^.]+")
    removed = []
    with contextlib.suppress(OSError):
        for path in output.parent.iterdir():
            match = pattern.fullmatch(path.name)
            if match and int(match[1]) != os.getpid() and not _alive(int(match[1])) and path.is_file():
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed
