"""``streamdiffvsr script``: print the generated .vpy for hand editing."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .errors import CliError
from .presets import load_settings
from .vpy import render_script


def run_script(args: argparse.Namespace) -> int:
    settings = load_settings(args.preset, args.set)
    if args.input is not None and not Path(args.input).is_file():
        raise CliError(f"INPUT {args.input} is not a file")
    sys.stdout.write(render_script(settings))
    sys.stdout.flush()
    if not sys.stdout.isatty():
        source = shlex.quote(args.input) if args.input else "INPUT"
        print(
            f"streamdiffvsr: edit it, then run: streamdiffvsr encode {source} OUTPUT.mkv --vpy SCRIPT.vpy",
            file=sys.stderr,
        )
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "script",
        help="print the generated .vpy (for hand editing; use it with encode --vpy)",
        description="Print the .vpy that `encode` would run. Paths are not written into it: encode passes them "
        "with vspipe --arg src=INPUT (and model=, flow_weights=).",
    )
    p.add_argument(
        "input", metavar="INPUT", nargs="?", help="the source video (only checked; not written in)"
    )
    p.add_argument("--preset", metavar="NAME|FILE", help="a bundled preset (see `presets`) or a .toml file")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="override a preset key")
    p.set_defaults(func=run_script)
