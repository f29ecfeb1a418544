"""The CLI's own user-facing error: ``main`` prints its message on one line and exits non-zero."""


class CliError(Exception):
    """A mistake the user can fix (bad path, unknown preset, missing tool); the message says what and how."""

    exit_code = 2


class EncodeError(Exception):
    """A part of the encode failed (``side``: the script, ffmpeg, a segment's worker): ``main`` prints the last
    lines it printed (``tail``), then the message on one line, and exits 1. Nothing incomplete was written."""

    exit_code = 1

    def __init__(self, side: str, status: str, tail: list[str], where: str = "") -> None:
        super().__init__(f"{where + ': ' if where else ''}{side} failed ({status}); no output was written")
        self.side, self.tail = side, tail
