"""A progress bar on stderr: frames done / total, fps and ETA (redrawn on a terminal, periodic lines otherwise)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class ProgressSink(Protocol):
    """What an encode reports its progress to (``Progress``, or anything that shows it elsewhere)."""

    # Seconds left given the frames per second measured so far; the encode sets it from its plan.
    eta: Callable[[float], float | None] | None

    def update(self, done: int, total: int | None = None) -> None:
        """Frames done so far (and the total, once known); from any thread."""

    def draw(self) -> None:
        """Show it, if due (from the main thread)."""

    def clear(self) -> None:
        """Make room for a message line."""

    def finish(self) -> None:
        """Show the final state."""


class Progress:
    """A ``ProgressSink`` on stderr. Fed from any thread with ``update``; drawn from the main thread with
    ``draw``."""

    def __init__(self, label: str = "upscaling", stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.interval = 0.25 if self.tty else 10.0
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        # (time, frames done) when the first frame came: fps and ETA leave the model loading out.
        self._first: tuple[float, int] | None = None
        self._start = time.monotonic()
        self._drawn_at = 0.0
        self._drawn_text = ""
        self.eta: Callable[[float], float | None] | None = None  # None: (total - done) / fps

    def update(self, done: int, total: int | None = None) -> None:
        with self._lock:
            if self._first is None and done > 0:
                self._first = (time.monotonic(), done)
            self._done = max(self._done, done)
            if total:
                self._total = total

    def text(self) -> str:
        """The current progress line."""
        with self._lock:
            done, total, first = self._done, self._total, self._first
        now = time.monotonic()
        if first is None:
            return f"{self.label}: starting (loading the model, first frame) {format_duration(now - self._start)}"
        elapsed = now - first[0]
        fps = (done - first[1]) / elapsed if elapsed > 0 and done > first[1] else 0.0
        if total:
            filled = round(BAR_WIDTH * min(done, total) / total)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            left = self.eta(fps) if self.eta is not None and fps > 0 else None
            if left is None and fps > 0:
                left = (total - done) / fps
            eta = f"ETA {format_duration(left)}" if left is not None else "ETA --:--:--"
            return f"{self.label} [{bar}] {done}/{total} frames  {fps:.2f} fps  {eta}"
        return f"{self.label}: {done} frames  {fps:.2f} fps"

    def draw(self, force: bool = False) -> None:
        """Draw if enabled and due (every 0.25 s on a terminal, every 10 s in a log)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn_at < self.interval):
            return
        text = self.text()
        if not self.tty and text == self._drawn_text:
            return
        self._drawn_at, self._drawn_text = now, text
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """End the bar's line so the next message starts on a fresh one."""
        if self.tty and self._drawn_text:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn_text = ""

    def finish(self) -> None:
        """Draw the final state and end the line."""
        self.draw(force=True)
        if self.tty and self._drawn_text:
            self.stream.write("\n")
            self.stream.flush()
