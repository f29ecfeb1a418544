"""The work folder of a segmented encode and its manifest: what the run is (a fingerprint of source and its
content, script, model, settings and render threads), its segments, and for each finished one the frame count, size and SHA-256
of the file that was verified. The manifest is rewritten atomically (a temporary file, fsync, rename) after each
finished segment, so a run killed at any moment leaves a manifest that is true; a lock on the folder keeps a
second run of the same OUTPUT out while one is working. A resume trusts a segment file only if it is the one
that was verified."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.segments.jobs import Segment
from streamdiffvsr.cli.segments.partials import claim, segment_file

MANIFEST = "manifest.json"
LOCK = "lock"
VERSION = 3  # 3: the source's content digest in the fingerprint
# What an encode writes in its work folder (the lock, the manifest and its temporary, segments and their
# attempts, the concat list, the joined file): a folder without a manifest is an encode's only if this is all
# it holds (a run killed before its first save).
OUR_NAMES = re.compile(
    r"lock|manifest\.json|\.manifest\.json\.\d+|segment-\d+(\.partial-\d+(-\d+)?)?\.nut|segments\.ffconcat"
    r"|joined\.partial\.\w+"
)
RESTART_HINT = "rerun with --restart to start over"


@dataclass(frozen=True)
class Finished:
    """A verified segment file: its frame count, size in bytes and SHA-256."""

    frames: int
    size: int
    sha256: str


def file_digest(path: Path) -> tuple[int, str] | None:
    """Size and SHA-256 of ``path``, None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return path.stat().st_size, digest.hexdigest()
    except OSError:
        return None


# The source's content in the fingerprint: a file up to WHOLE_BYTES is read whole; a larger one in SAMPLES
# blocks of SAMPLE_BYTES spread evenly from its first byte to its last.
WHOLE_BYTES = 64 << 20
SAMPLES = 64
SAMPLE_BYTES = 1 << 20


def source_fingerprint(path: Path) -> dict[str, Any]:
    """What identifies the source of an encode: its path, size, modification time and a SHA-256 of its content.

    Size and time alone miss a file rewritten in place with its time put back (``cp --preserve``, ``rsync -t``,
    ``touch -r``), and a resume would join old segments with new ones. The digest covers the whole file up to
    64 MiB (WHOLE_BYTES); a larger one is hashed over 64 blocks of 1 MiB at evenly spaced offsets, first and
    last block included, together with the size: 64 MiB read however large the source (about 0.1 s from a
    cache, a few seconds from a slow disk, against minutes to hours of hashing a film whole). A re-encoded or
    replaced video changes nearly every block, so the samples see it; what they can miss is an edit of a few
    bytes between two samples that also puts the time back, which is not how videos change.
    """
    stat = path.stat()
    digest = hashlib.sha256(str(stat.st_size).encode())
    with path.open("rb") as handle:
        if stat.st_size <= WHOLE_BYTES:
            while chunk := handle.read(SAMPLE_BYTES):
                digest.update(chunk)
        else:
            step = (stat.st_size - SAMPLE_BYTES) / (SAMPLES - 1)
            for k in range(SAMPLES):
                handle.seek(round(k * step))
                digest.update(handle.read(SAMPLE_BYTES))
    return {
        "path": str(path.absolute()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "content_sha256": digest.hexdigest()[:32],
    }


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first entry that differs between two fingerprints (in the new one's order), in words."""
    for name in [*new, *(name for name in old if name not in new)]:
        a, b = old.get(name), new.get(name)
        if a != b:
            return (
                f"{name} was {_words(a)}, now {_words(b)}"
                if not isinstance(a, dict)
                else _difference(a, b or {})
            )
    return None


def _comparable(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """A fingerprint as a resume compares it: the render threads by the count used (``threads``), whether
    segment.threads set it or it was the machine's cores."""
    settings = fingerprint.get("settings")
    if not isinstance(settings, dict):
        return fingerprint
    return {**fingerprint, "settings": {k: v for k, v in settings.items() if k != "threads"}}


def _resume_hint(old: dict[str, Any], new: dict[str, Any]) -> str:
    """How to resume despite a difference: when only the thread count differs (another machine's cores), the
    setting that gives the recorded count back."""
    threads = old.get("threads")
    if isinstance(threads, int) and _difference({**old, "threads": None}, {**new, "threads": None}) is None:
        return (
            f"rerun with --set segment.threads={threads} to resume with the thread count its segments were "
            "rendered with, or with --restart to start over"
        )
    return "rerun with the same input and settings to resume, or with --restart to start over"


def _words(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and value[1] is None:
        return f"frames {value[0]} to the end"
    return "not set" if value is None else repr(value)


@dataclass
class Manifest:
    """The plan and progress of one segmented encode (``done``: segment index -> its verified file)."""

    folder: Path
    fingerprint: dict[str, Any]
    segments: list[Segment]
    done: dict[int, Finished] = field(default_factory=dict)

    def save(self) -> None:
        data = {
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "segments": [[s.first, s.last] for s in self.segments],
            "done": {str(i): [f.frames, f.size, f.sha256] for i, f in sorted(self.done.items())},
        }
        temporary = self.folder / f".{MANIFEST}.{os.getpid()}"
        claim(temporary)
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / MANIFEST)
        _fsync_folder(self.folder)

    def finish(self, segment: Segment, frames: int) -> None:
        """Record a verified segment (its file already renamed into place) with the digest of that file."""
        found = file_digest(segment_file(self.folder, segment.index))
        if found is None:
            raise CliError(f"cannot read the finished {segment.describe(len(self.segments))} back")
        self.done[segment.index] = Finished(frames, *found)
        self.save()

    def check_covers(self, first: int, last: int) -> None:
        """The segments (consecutive by construction) must span exactly frames ``first`` .. ``last`` of this
        encode: a shortened or stretched list would join into a video with frames missing or invented."""
        span = (self.segments[0].first, self.segments[-1].last)
        if span != (first, last):
            raise _damaged(
                self.folder / MANIFEST, f"its segments cover frames {span[0]}-{span[1]}, not {first}-{last}"
            )

    def pending(self, notify: Callable[[str], None]) -> list[Segment]:
        """The segments still to do: not recorded, or whose file is gone, changed or foreign (said in a line
        each: they are rendered again)."""
        todo = []
        for s in self.segments:
            recorded = self.done.get(s.index)
            if recorded is None:
                todo.append(s)
                continue
            found = file_digest(segment_file(self.folder, s.index))
            why = (
                "its file is missing" if found is None
                else "its file is not the one that was verified" if found != (recorded.size, recorded.sha256)
                else None
            )  # fmt: skip
            if why is not None:
                notify(f"{s.describe(len(self.segments))} is rendered again: {why}")
                del self.done[s.index]
                todo.append(s)
        return todo


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _damaged(path: Path, why: str) -> CliError:
    return CliError(f"{path} is damaged ({why}); {RESTART_HINT}")


def _segments(path: Path, data: dict[str, Any]) -> list[Segment]:
    rows = data.get("segments")
    if not isinstance(rows, list) or not rows:
        raise _damaged(path, "no segment list")
    segments = []
    for i, row in enumerate(rows):
        if not (
            isinstance(row, list)
            and len(row) == 2
            and all(type(x) is int for x in row)
            and 0 <= row[0] <= row[1]
        ):
            raise _damaged(path, f"segment entry {row!r} is not [first, last]")
        if segments and row[0] != segments[-1].last + 1:
            raise _damaged(path, "its segments do not follow each other")
        segments.append(Segment(i, row[0], row[1]))
    return segments


def _finished(path: Path, data: dict[str, Any], count: int) -> dict[int, Finished]:
    done = data.get("done", {})
    if not isinstance(done, dict):
        raise _damaged(path, "the list of finished segments is not a table")
    found = {}
    for key, entry in done.items():
        ok = key.isdigit() and int(key) < count and isinstance(entry, list) and len(entry) == 3
        if not ok or type(entry[0]) is not int or type(entry[1]) is not int or not isinstance(entry[2], str):
            raise _damaged(path, f"finished entry {key!r}: {entry!r}")
        found[int(key)] = Finished(*entry)
    return found


def load(folder: Path, fingerprint: dict[str, Any]) -> Manifest | None:
    """The manifest in ``folder`` if there is one; a CliError if it is damaged or belongs to another run (its
    settings, source, script or model differ), naming the difference and ``--restart``."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path} ({exc}); {RESTART_HINT}") from None
    if not isinstance(data, dict):
        raise _damaged(path, "not a JSON object")
    if data.get("version") != VERSION:
        raise CliError(
            f"{folder} was written by another version of streamdiffvsr (manifest version {data.get('version')!r}, "
            f"this one writes {VERSION}); {RESTART_HINT}"
        )
    old = data.get("fingerprint")
    if not isinstance(old, dict):
        raise _damaged(path, "no fingerprint")
    old, new = _comparable(old), _comparable(fingerprint)
    if (difference := _difference(old, new)) is not None:
        raise CliError(f"{folder} holds segments of another encode ({difference}); {_resume_hint(old, new)}")
    segments = _segments(path, data)
    return Manifest(folder, fingerprint, segments, _finished(path, data, len(segments)))


def check_folder(folder: Path) -> None:
    """The work folder must be a plain folder (or absent): a link or anything else is refused, never followed;
    so is a folder of that name that an encode did not make (no manifest, other files): it would be used, then
    removed with what it holds."""
    try:
        mode = folder.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
        raise CliError(f"the work folder {folder} is {kind}; remove it (it is not one streamdiffvsr made)")
    if (folder / MANIFEST).exists():
        return
    foreign = sorted(entry.name for entry in folder.iterdir() if not OUR_NAMES.fullmatch(entry.name))
    if foreign:
        raise CliError(
            f"{folder} is not a work folder of streamdiffvsr (no {MANIFEST}; it holds {foreign[0]!r}"
            f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}): an encode would remove it at its "
            "end; move it away, or write another OUTPUT"
        )


@contextlib.contextmanager
def locked(folder: Path, restart: bool, notify: Callable[[str], None]) -> Iterator[None]:
    """Create (or with ``restart``, empty) ``folder`` and hold its lock; another live run is a CliError."""
    check_folder(folder)
    if restart and folder.is_dir():
        with _lock(folder):
            removed = [entry for entry in folder.iterdir() if entry.name != LOCK]
            for entry in removed:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        finished = sum(
            1 for entry in removed if entry.name.startswith("segment-") and ".partial" not in entry.name
        )
        notify(f"--restart: removed the earlier run's work ({finished} finished segments) from {folder}")
    folder.mkdir(exist_ok=True)
    check_folder(folder)
    with _lock(folder):
        yield


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        mode = path.lstat().st_mode if path.is_symlink() or path.exists() else 0
        kind = "a link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a plain file"
        why = kind if mode else exc.strerror or str(exc)
        raise CliError(
            f"cannot take the lock file {path} ({why}); remove it if no other encode of this OUTPUT runs, "
            "then rerun"
        ) from None
    with os.fdopen(fd, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CliError(f"another encode is working in {folder}; wait for it or stop it") from None
        yield


def remove_leftovers(folder: Path, keep: set[Path]) -> None:
    """Remove what a dead run left in ``folder`` (partial segments): every plain file but ``keep``, the
    manifest and the lock, and every link (the link itself: nothing is ever written through one)."""
    for entry in folder.iterdir():
        if (
            entry.name not in (MANIFEST, LOCK)
            and entry not in keep
            and (entry.is_symlink() or entry.is_file())
        ):
            entry.unlink()
