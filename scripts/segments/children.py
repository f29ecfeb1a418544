"""Child processes of an encode (ffmpeg, render workers): each in its own session (a Ctrl-C reaches only the
command, which stops them in order) and, on Linux, killed by the kernel if its parent dies, so nothing outlives
a SIGKILLed run; the tail of each one's stderr is kept for the error message."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

TAIL_LINES = 15
STOP_TIMEOUT_S = 5.0  # for the rest of a dead child's stderr
KILL_AFTER_S = 1.0  # a child that outlives SIGTERM this long is killed
NOTICE_PREFIX = "streamdiffvsr: "  # lines a script prints with this prefix are relayed to the user


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when its parent dies."""
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
    """A running child process and the thread that reads its stderr (the tail is what ``on_line`` left)."""

    name: str
    proc: subprocess.Popen
    on_line: Callable[[str], bool] = lambda line: False  # True = consumed (not kept in the tail)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None

    def _read(self) -> None:
        buffer = b""
        fd = self.proc.stderr.fileno()
        with contextlib.suppress(OSError):
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

    def join(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Wait for the rest of its stderr (after it exited)."""
        if self.reader is not None:
            self.reader.join(timeout)


def spawn(
    name: str,
    args: list[str],
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.DEVNULL,
    on_line: Callable[[str], bool] = lambda line: False,
) -> Child:
    proc = subprocess.Popen(
        args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_PREEXEC
    )
    child = Child(name, proc, on_line)
    child.reader = threading.Thread(target=child._read, name=f"{name}-stderr", daemon=True)
    child.reader.start()
    return child


def stop(child: Child) -> None:
    """Kill its process group first (SIGTERM, SIGKILL if it has not exited within KILL_AFTER_S), then close our
    end of its stdin. Nothing here waits for anything the child would send: its stdout is left to the thread
    that reads it (closing it under a reader blocked in ``read`` would wait for the child's next message), which
    sees the end of the stream as soon as the child is dead. Ctrl-C is held off meanwhile (a bounded wait)."""
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, sig)
            try:
                child.proc.wait(KILL_AFTER_S)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # the rest of its group
            os.killpg(child.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        child.join(KILL_AFTER_S)  # a grandchild may hold its stderr open: not waited for
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
