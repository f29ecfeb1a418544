"""The ``streamdiffvsr`` command: parse arguments, run a subcommand, turn user errors into one-line messages."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from typing import NoReturn

from streamdiffvsr.cli.commands import download, encode, frames, info, presets, preview, script
from streamdiffvsr.cli.console import printable
from streamdiffvsr.cli.errors import CliError, EncodeError
from streamdiffvsr.cli.settings.codecs import CODECS
from streamdiffvsr.errors import StreamDiffVSRError
from streamdiffvsr.version import __version__

PROG = "streamdiffvsr"
COMMANDS = (encode, preview, script, presets, info, download, frames)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus where to get help), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=f"Stream-DiffVSR 4x video super-resolution: VapourSynth script + encode ({', '.join(CODECS)}) in one step.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failed run, 2 user error, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop children and clean up as for Ctrl-C
    try:
        return args.func(args)
    except CliError as exc:
        print(f"{PROG}: error: {printable(exc)}", file=sys.stderr)
        return exc.exit_code
    except StreamDiffVSRError as exc:
        print(f"{PROG}: error: {printable(exc)}", file=sys.stderr)
        return 2
    except EncodeError as exc:
        for line in exc.tail:
            print(f"  {exc.side}| {line}", file=sys.stderr)
        print(f"{PROG}: error: {printable(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        # The interpreter's last collection walks every object left, seconds once Ray and torch are loaded:
        # everything is stopped and removed by now, so an interrupted run ends at once.
        gc.freeze()
        return 130
    except BrokenPipeError:  # e.g. `streamdiffvsr script | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"{PROG}: error: {printable(exc)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
