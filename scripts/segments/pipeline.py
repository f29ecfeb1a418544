"""Running ``vspipe | ffmpeg`` as two child processes: progress, failure attribution, cleanup, atomic output.

Both children run in their own sessions (a Ctrl-C reaches only us, and we stop them in order) and, on Linux,
die with us if we are killed outright. The output is written to ``partial`` and renamed to ``output`` only when
both exit 0 and ffprobe reads ``partial`` whole with the frame count vspipe sent (ffmpeg can exit 0 on a full
disk); on any failure or interruption both are stopped and ``partial`` is removed, so OUTPUT is never replaced
by an unverified file.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streamdiffvsr.cli.media.verify import IncompleteVideo, verify_frames
from streamdiffvsr.cli.progress import Progress

TAIL_LINES = 15
FAILURE_GRACE_S = 2.0  # after one side fails, how long the other may take to show whether it fails too
STOP_TIMEOUT_S = 5.0
POLL_S = 0.1
NOTICE_PREFIX = "streamdiffvsr: "  # lines a script prints with this prefix are relayed to the user
_FRAME = re.compile(r"Frame: (\d+)/(\d+)")
_OUTPUT = re.compile(r"Output (\d+) frames in")


class PipelineError(Exception):
    """One side failed: its name, exit status in words (in the message) and the last lines of its stderr."""

    def __init__(self, side: str, status: str, tail: list[str]) -> None:
        super().__init__(f"{side} failed ({status}); no output was written")
        self.side, self.tail = side, tail


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when we die (no orphans even if we are SIGKILLed)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


_PREEXEC = _die_with_parent_fn()


@dataclass
class Child:
    """A running child process and the reader thread that collects the tail of its stderr."""

    name: str
    proc: subprocess.Popen
    on_line: Callable[[str], bool] = lambda line: False  # True = consumed (not kept in the tail)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None

    def start_reader(self) -> None:
        self.reader = threading.Thread(target=self._read, name=f"{self.name}-stderr", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        buffer = b""
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 65536):
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for raw in lines:
                self._line(raw)
        if buffer:
            self._line(buffer)

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line and not self.on_line(line):
            self.tail.append(line)

    def status(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL if it has not exited within STOP_TIMEOUT_S, then sweep the group
        (a wrapper such as a venv's ``vspipe`` runs the real binary as its own child, in the same group)."""
        if self.proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def join(self) -> None:
        if self.reader is not None:
            self.reader.join(STOP_TIMEOUT_S)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _spawn(name: str, args: list[str], stdin, stdout) -> Child:
    proc = subprocess.Popen(
        args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_PREEXEC
    )
    return Child(name, proc)


# Python's and VapourSynth's own error lines (e.g. "Trim: invalid first frame specified (beyond clip end)").
_VSPIPE_ERROR = re.compile(r"error|fail|exception|traceback|invalid|beyond", re.IGNORECASE)


def _culprit(vspipe: Child, ffmpeg: Child) -> Child:
    """Which side's failure to report, once one has failed. The other gets a moment to fail too: a script that
    fails before its first frame leaves ffmpeg an empty stream (ffmpeg fails as well, but vspipe said why), while
    an ffmpeg that fails on its own leaves vspipe dying silently on the closed pipe."""
    for child in (vspipe, ffmpeg):
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(FAILURE_GRACE_S)
    if vspipe.proc.returncode in (None, 0):
        return ffmpeg
    if ffmpeg.proc.returncode in (None, 0):
        return vspipe
    vspipe.join()  # all of its stderr, to see whether it reported an error of its own
    return vspipe if any(_VSPIPE_ERROR.search(line) for line in vspipe.tail) else ffmpeg


class Pipeline:
    """``vspipe`` (y4m on stdout) feeding ``ffmpeg`` (writing ``partial``), renamed to ``output`` on success."""

    def __init__(
        self,
        vspipe_args: list[str],
        ffmpeg_args: list[str],
        partial: Path,
        output: Path,
        progress: Progress,
        notify: Callable[[str], None],
        ffprobe: str,
    ) -> None:
        self.vspipe_args, self.ffmpeg_args = vspipe_args, ffmpeg_args
        self.partial, self.output = partial, output
        self.progress, self.notify = progress, notify
        self.ffprobe = ffprobe
        self.children: list[Child] = []
        self.notices: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.frames_sent: int | None = None  # from vspipe's closing "Output N frames in ..." line

    def _vspipe_line(self, line: str) -> bool:
        if line.startswith(NOTICE_PREFIX):
            self.notices.put(line[len(NOTICE_PREFIX) :])
            return True
        if match := _FRAME.search(line):
            self.progress.update(int(match[1]), int(match[2]))
            return True
        if match := _OUTPUT.search(line):
            self.frames_sent = int(match[1])
            self.progress.update(self.frames_sent)
        return False

    def run(self) -> None:
        """Run both to completion; raises PipelineError (after cleanup) or re-raises an interruption."""
        try:
            vspipe = _spawn("vspipe", self.vspipe_args, subprocess.DEVNULL, subprocess.PIPE)
            vspipe.on_line = self._vspipe_line
            self.children.append(vspipe)
            ffmpeg = _spawn("ffmpeg", self.ffmpeg_args, vspipe.proc.stdout, subprocess.DEVNULL)
            self.children.append(ffmpeg)
            vspipe.proc.stdout.close()  # ffmpeg holds the read end now; vspipe sees EPIPE if ffmpeg dies
            for child in self.children:
                child.start_reader()
            failed = self._wait(vspipe, ffmpeg)
            self._flush_notices()
            if failed is not None:
                failed.join()  # the whole tail of its stderr
                raise PipelineError(failed.name, failed.status(), list(failed.tail))
            for child in self.children:
                child.join()
            self._verify(ffmpeg)
            os.replace(self.partial, self.output)
        except BaseException:
            self._cleanup()
            raise
        finally:
            self.progress.clear()

    def _wait(self, vspipe: Child, ffmpeg: Child) -> Child | None:
        """Wait for both; the side whose failure explains the run's (see _culprit), or None if both exited 0."""
        while True:
            self._flush_notices()
            self.progress.render()
            v, f = vspipe.proc.poll(), ffmpeg.proc.poll()
            if v not in (None, 0) or f not in (None, 0):
                return _culprit(vspipe, ffmpeg)
            if v == 0 and f == 0:
                self.progress.finish()
                return None
            time.sleep(POLL_S)

    def _verify(self, ffmpeg: Child) -> None:
        """Raise PipelineError unless ``partial`` holds every frame vspipe sent (blamed on ffmpeg, with its tail:
        on a full disk that is where "No space left on device" is)."""
        if self.frames_sent is None:
            raise PipelineError("vspipe", "exit status 0 without its closing frame count", [])
        try:
            verify_frames(self.partial, self.ffprobe, self.frames_sent)
        except IncompleteVideo as exc:
            status = f"exit status 0, but the file is incomplete: {exc}"
            raise PipelineError(ffmpeg.name, status, list(ffmpeg.tail)) from None

    def _flush_notices(self) -> None:
        while not self.notices.empty():
            self.progress.clear()
            self.notify(self.notices.get())

    def _cleanup(self) -> None:
        """Stop every child, then remove the partial output. A second Ctrl-C cannot interrupt this."""
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for child in self.children:
                child.stop()
            for child in self.children:
                child.join()
            with contextlib.suppress(OSError):  # never hide the failure being reported behind this one
                self.partial.unlink()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
