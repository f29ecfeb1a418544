"""How the CLI prints for the user: one-line notices, and any text made safe for the terminal."""

from __future__ import annotations

import sys


def printable(text: object) -> str:
    """``text`` on one line, with the raw bytes of a non-UTF-8 file name shown as ``\\xNN`` (legal on Linux,
    but a strict UTF-8 stdout cannot print the surrogates Python holds them as)."""
    line = str(text).replace("\r", "\\r").replace("\n", "\\n")
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def notify(message: str) -> None:
    """A one-line notice on stderr."""
    print(f"streamdiffvsr: {printable(message)}", file=sys.stderr, flush=True)
