"""``streamdiffvsr script``: print the generated .vpy for hand editing."""

from __future__ import annotations

import argparse
import shlex
import sys

from streamdiffvsr.cli.arguments import absolute_path
from streamdiffvsr.cli.console import notify
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.vpy import generate_script
from streamdiffvsr.cli.settings.models import add_model_argument, choose_model, steps_notice
from streamdiffvsr.cli.settings.presets import add_preset_arguments, load_settings


def run_script(args: argparse.Namespace) -> int:
    settings = load_settings(args.preset, args.set)
    if args.input is not None and not args.input.is_file():
        raise CliError(f"INPUT {args.input} is not a file")
    model = ""
    if args.model:  # not written in either: checked (fetched) as encode would, and named in the command below
        choice = choose_model(args.model)
        for notice in filter(None, [choice.notice, steps_notice(settings["steps"], choice)]):
            notify(notice)
        model = f" --model {shlex.quote(args.model)}"
    sys.stdout.write(generate_script(settings))
    sys.stdout.flush()
    if not sys.stdout.isatty():
        source = shlex.quote(str(args.input)) if args.input else "INPUT"
        print(
            f"streamdiffvsr: edit it, then run: streamdiffvsr encode {source} OUTPUT.mkv --vpy SCRIPT.vpy{model}",
            file=sys.stderr,
        )
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "script",
        help="print the generated .vpy (for hand editing; use it with encode --vpy)",
        description="Print the .vpy that `encode` would run. Paths are not written into it: encode passes them "
        "with vspipe --arg src=INPUT (and model=, flow_weights=); --model is checked and named in the encode "
        "command it suggests.",
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        nargs="?",
        type=absolute_path,
        help="the source video (only checked; not written in)",
    )
    add_preset_arguments(p)
    add_model_argument(p)
    p.set_defaults(func=run_script)
