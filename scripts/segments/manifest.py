"""The work folder of a segmented encode and its manifest: what the run is (a fingerprint of source, script,
model and settings), its segments, and which are finished. The manifest is rewritten atomically (a temporary
file, fsync, rename) after each finished segment, so a run killed at any moment leaves a manifest that is
true; a lock on the folder keeps a second run of the same OUTPUT out while one is working."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.segments.plan import Segment

MANIFEST = "manifest.json"
LOCK = "lock"
VERSION = 1


def work_folder(output: Path) -> Path:
    """The hidden folder beside OUTPUT that holds the segments until OUTPUT is complete."""
    return output.with_name(f".{output.name}.segments")


def segment_file(folder: Path, segment: Segment) -> Path:
    return folder / f"segment-{segment.index:05d}.mkv"


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first entry that differs between two fingerprints (in the new one's order), in words."""
    for name in [*new, *(name for name in old if name not in new)]:
        a, b = old.get(name), new.get(name)
        if a != b:
            return f"{name} was {a!r}, now {b!r}" if not isinstance(a, dict) else _difference(a, b or {})
    return None


@dataclass
class Manifest:
    """The plan and progress of one segmented encode (``done``: segment index -> its verified frame count)."""

    folder: Path
    fingerprint: dict[str, Any]
    segments: list[Segment]
    done: dict[int, int] = field(default_factory=dict)

    def save(self) -> None:
        data = {
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "segments": [[s.first, s.last] for s in self.segments],
            "done": {str(index): frames for index, frames in sorted(self.done.items())},
        }
        temporary = self.folder / f".{MANIFEST}.{os.getpid()}"
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / MANIFEST)
        _fsync_folder(self.folder)

    def finish(self, segment: Segment, frames: int) -> None:
        """Record a verified segment (its file already renamed into place)."""
        self.done[segment.index] = frames
        self.save()

    def pending(self) -> list[Segment]:
        """The segments still to do: not recorded, or recorded but whose file has gone."""
        return [
            s for s in self.segments if s.index not in self.done or not segment_file(self.folder, s).is_file()
        ]


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(folder: Path, fingerprint: dict[str, Any]) -> Manifest | None:
    """The manifest in ``folder`` if there is one; a CliError if it belongs to another run (its settings,
    source, script or model differ), naming the difference and ``--restart``."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path} ({exc}); rerun with --restart to start over") from None
    old = data.get("fingerprint", {}) if data.get("version") == VERSION else {"version": data.get("version")}
    if (difference := _difference(old, fingerprint)) is not None:
        raise CliError(
            f"{folder} holds segments of another encode ({difference}); rerun with the same input and "
            "settings to resume, or with --restart to start over"
        )
    segments = [Segment(i, a, b) for i, (a, b) in enumerate(data["segments"])]
    done = {int(index): int(frames) for index, frames in data.get("done", {}).items()}
    return Manifest(folder, fingerprint, segments, done)


@contextlib.contextmanager
def locked(folder: Path, restart: bool) -> Iterator[None]:
    """Create (or with ``restart``, empty) ``folder`` and hold its lock; another live run is a CliError."""
    if restart and folder.is_dir():
        with _lock(folder):
            for entry in folder.iterdir():
                if entry.name != LOCK:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    folder.mkdir(exist_ok=True)
    with _lock(folder):
        yield


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    with (folder / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CliError(f"another encode is working in {folder}; wait for it or stop it") from None
        yield


def remove_leftovers(folder: Path, keep: set[Path]) -> None:
    """Remove what a dead run left in ``folder`` (partial segments): everything but ``keep``, the manifest and
    the lock."""
    for entry in folder.iterdir():
        if entry.name not in (MANIFEST, LOCK) and entry not in keep and entry.is_file():
            entry.unlink()
