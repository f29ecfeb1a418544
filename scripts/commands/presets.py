"""``streamdiffvsr presets``: one line per bundled preset, a preset's TOML, or the keys a preset may set."""

from __future__ import annotations

import argparse

from streamdiffvsr.cli.settings.presets import (
    DEFAULT_PRESET,
    bundled_presets,
    describe,
    load_settings,
    preset_reference,
    preset_text,
)
from streamdiffvsr.cli.settings.schema import KEYS


def _format_default(value: object) -> str:
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def run_presets(args: argparse.Namespace) -> int:
    if args.keys:
        names = [f"{key.section}.{key.name}" for key in KEYS]
        width = max(map(len, names)) + 2
        for name, key in zip(names, KEYS, strict=True):
            print(f"{name:<{width}}{key.allowed()}; default {_format_default(key.default)}")
            print(f"{'':<{width}}{key.help}")
        return 0
    if args.name:  # a bundled preset or a file, checked like --preset would check it
        text, _ = preset_text(args.name)
        load_settings(args.name)
        print(text, end="")
        return 0
    names = bundled_presets()
    labels = {name: name + (" (default)" if name == DEFAULT_PRESET else "") for name in names}
    width = max(map(len, labels.values()))
    for name, label in labels.items():
        print(f"{label:<{width}}  {describe(name)}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "presets",
        help="list the bundled presets (NAME: print one, to copy and edit; --keys: what a preset can set)",
    )
    p.add_argument(
        "name",
        metavar="NAME|FILE",
        nargs="?",
        type=preset_reference,
        help="print this preset's TOML (a file: once checked)",
    )
    p.add_argument("--keys", action="store_true", help="list every key with its allowed values and default")
    p.set_defaults(func=run_presets)
