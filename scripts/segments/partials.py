"""The one home of the names of the files an encode writes before OUTPUT is complete: the hidden files beside
OUTPUT (``.NAME.partial-PID.ext``: the encode in progress and the generated script), the work folder of a
segmented encode and the segment files in it, and the name each attempt at a job writes (its own, so that a
worker cut off but still alive never writes the file of the attempt that replaced it); how a file is written there (never through a link) and moved
into place (never over a file someone else created meanwhile, also without hard links); and the cleanup of what
a killed run (its PID gone) left behind."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.verify import IncompleteVideo, verify_frames

GENERATED_SCRIPT_SUFFIX = ".vpy"
# link() fails with these where the filesystem has no hard links (vfat, exFAT, some network mounts).
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EACCES, errno.EMLINK}
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1
PID_MAX = 4194304  # the largest PID Linux hands out: in the longest hidden name
ATTEMPT_MAX = 99  # room for the attempt number in the longest hidden name (the retry policy tries 3 times)


def partial_path(output: Path, suffix: str | None = None, pid: int | None = None) -> Path:
    """The hidden name beside OUTPUT for this process (``suffix`` defaults to OUTPUT's own extension)."""
    pid = os.getpid() if pid is None else pid
    return output.with_name(f".{output.stem}.partial-{pid}{output.suffix if suffix is None else suffix}")


def check_names(output: Path) -> None:
    """OUTPUT's name must leave room for the longest hidden name written beside it (a CliError saying by how
    much to shorten it, before anything runs, rather than ENAMETOOLONG after the work)."""
    names = [attempt_partial(partial_path(output, None, PID_MAX), ATTEMPT_MAX).name,
             partial_path(output, GENERATED_SCRIPT_SUFFIX, PID_MAX).name]  # fmt: skip
    longest = max([*names, work_folder(output).name], key=lambda name: len(os.fsencode(name)))
    try:
        limit = os.pathconf(output.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        return
    excess = len(os.fsencode(longest)) - limit
    if excess > 0:
        raise CliError(
            f"OUTPUT's name is too long for the hidden files written beside it while it is encoded ({longest!r} "
            f"would be {limit + excess} bytes, the folder takes {limit}): shorten it by {excess} bytes"
        )


def work_folder(output: Path) -> Path:
    """The hidden folder beside OUTPUT that holds the segments until OUTPUT is complete."""
    return output.with_name(f".{output.name}.segments")


SEGMENT_SUFFIX = ".nut"  # NUT keeps each frame's exact time (Matroska rounds to 1 ms), every codec fits


def segment_file(folder: Path, index: int) -> Path:
    return folder / f"segment-{index:05d}{SEGMENT_SUFFIX}"


def segment_partial(folder: Path, index: int) -> Path:
    """Where this process's first attempt at a segment writes it before it is verified (``attempt_partial``:
    a retry's)."""
    return folder / f"segment-{index:05d}.partial-{os.getpid()}{SEGMENT_SUFFIX}"


def attempt_partial(partial: Path, attempt: int) -> Path:
    """Where attempt ``attempt`` (from 1) at the job whose first attempt writes ``partial`` writes: a name of
    its own, so that only the attempt the orchestrator accepts is moved into place."""
    return partial if attempt == 1 else partial.with_name(f"{partial.stem}-{attempt}{partial.suffix}")


def joined_partial(folder: Path, output: Path) -> Path:
    """Where the joined segments are written before they are verified and moved to OUTPUT."""
    return folder / f"joined.partial{output.suffix}"


def claim(path: Path) -> None:
    """Make ``path`` a new empty file of this run for a writer that follows names (ffmpeg, ``open``):
    whatever is there is removed first (a link itself, never its target; a folder is refused)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    _create_new(path)


def _create_new(path: Path) -> None:
    """An empty file at ``path``; FileExistsError if anything is there already (a link included)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))


def move_into_place(partial: Path, target: Path, overwrite: bool) -> None:
    """Move a verified ``partial`` to ``target``. Without ``overwrite`` a ``target`` that appeared meanwhile is
    never replaced (FileExistsError): a hard link, or where the filesystem has none, a rename that refuses an
    existing target, or at last a rename over an empty placeholder created exclusively."""
    if overwrite:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)
        return
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno not in NO_HARD_LINKS:
            raise
    if _rename_noreplace(partial, target):
        return
    _create_new(target)  # the placeholder: from here on nobody else can create target
    try:
        os.replace(partial, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _rename_noreplace(source: Path, target: Path) -> bool:
    """renameat2(RENAME_NOREPLACE): FileExistsError if ``target`` exists; False where the C library or the
    filesystem has no such rename (e.g. exFAT through FUSE)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(target))


def taken(target: Path) -> str:
    """Why a verified file was not moved to ``target``."""
    return f"{target} was created by someone else meanwhile; pass --overwrite to replace it"


class NotCommitted(Exception):
    """Why a written file was not moved into place: ``incomplete`` (the writer's fault: its last lines say
    why), else the target's; ``retryable``: whether writing it again can help."""

    def __init__(self, message: str, incomplete: bool = False, retryable: bool = False) -> None:
        super().__init__(message)
        self.incomplete, self.retryable = incomplete, retryable


def verify_and_commit(partial: Path, target: Path, ffprobe: str, frames: int, overwrite: bool) -> None:
    """``verify`` ``partial``, then ``commit`` it as ``target``; NotCommitted says why not."""
    verify(partial, ffprobe, frames)
    commit(partial, target, overwrite)


def verify(partial: Path, ffprobe: str, frames: int) -> None:
    """Trust ``partial`` only if ffprobe reads it whole with exactly ``frames`` video frames (ffmpeg exits 0
    after a full disk); NotCommitted (incomplete) otherwise."""
    try:
        verify_frames(partial, ffprobe, frames)
    except IncompleteVideo as exc:
        raise NotCommitted(f"exit status 0, but the file is incomplete: {exc}", incomplete=True) from None


def commit(partial: Path, target: Path, overwrite: bool) -> None:
    """Move a verified ``partial`` to ``target`` (``move_into_place``); NotCommitted says why not."""
    try:
        move_into_place(partial, target, overwrite)
    except FileExistsError:
        raise NotCommitted(taken(target)) from None
    except OSError as exc:
        raise NotCommitted(
            f"cannot write {target}: {exc.strerror or exc}", retryable=exc.errno != errno.ENOSPC
        ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_dead_leftovers(output: Path, keep: Iterable[Path]) -> list[Path]:
    """Remove the partial files of OUTPUT whose run is dead (never a live run's); returns what was removed.
    Only plain files with the names this command writes count; a link, or a file the command line names
    (``keep``: INPUT, the user's script), is never a leftover, whatever its name."""
    suffixes = "|".join(map(re.escape, {output.suffix, GENERATED_SCRIPT_SUFFIX}))
    pattern = re.compile(rf"\.{re.escape(output.stem)}\.partial-(\d+)(?:-\d+)?(?:{suffixes})")
    kept = {(s.st_dev, s.st_ino) for s in map(_stat_or_none, keep) if s is not None}
    removed = []
    with contextlib.suppress(OSError):
        for path in output.parent.iterdir():
            match = pattern.fullmatch(path.name)
            if not match or int(match[1]) == os.getpid() or _alive(int(match[1])):
                continue
            found = _stat_or_none(path, follow=False)
            if found is None or not stat.S_ISREG(found.st_mode) or (found.st_dev, found.st_ino) in kept:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _stat_or_none(path: Path, follow: bool = True) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=follow)
    except OSError:
        return None
