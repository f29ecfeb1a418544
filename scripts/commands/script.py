"""``streamdiffvsr script``: print the generated .vpy for hand editing."""

from __future__ import annotations

import argparse
import shlex
import sys

from streamdiffvsr.cli.arguments import absolute_path
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.vpy import generate_script
from streamdiffvsr.cli.settings.presets import add_preset_arguments, load_settings


def run_script(args: argparse.Namespace) -> int:
    settings = load_settings(args.preset, args.set)
    if args.input is not None and not args.input.is_file():
        raise CliError(f"INPUT {args.input} is not a file")
    sys.stdout.write(generate_script(settings))
    sys.stdout.flush()
    if not sys.stdout.isatty():
        source = shlex.quote(str(args.input)) if args.input else "INPUT"
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
        "input",
        metavar="INPUT",
        nargs="?",
        type=absolute_path,
        help="the source video (only checked; not written in)",
    )
    add_preset_arguments(p)
    p.set_defaults(func=run_script)
