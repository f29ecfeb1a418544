"""Finding and reading presets: the bundled ``streamdiffvsr.presets`` TOML files or a user's own file."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from streamdiffvsr.cli.arguments import absolute_path, given
from streamdiffvsr.cli.console import notify
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.settings.schema import Settings, build_settings

DEFAULT_PRESET = "balanced"
PRESET_PACKAGE = "streamdiffvsr.presets"


def bundled_presets() -> dict[str, str]:
    """Bundled preset name -> its TOML text, sorted by name."""
    folder = resources.files(PRESET_PACKAGE)
    found = {
        entry.name.removesuffix(".toml"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }
    return dict(sorted(found.items()))


def _is_file_reference(name: str) -> bool:
    return name.endswith(".toml") or "/" in name


def preset_reference(name: str) -> str:
    """A ``--preset`` value as given: a bundled preset's name unchanged, a file made absolute."""
    name = given("the default preset")(name)
    return str(absolute_path(name)) if _is_file_reference(name) else name


def preset_text(name: str) -> tuple[str, str]:
    """The TOML text of a bundled preset (by name) or of a file, and a label for messages."""
    if _is_file_reference(name):
        path = absolute_path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CliError(f"preset file {name!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read preset file {name!r}: {exc}") from None
        label = str(path)
    else:
        presets = bundled_presets()
        if name not in presets:
            raise CliError(
                f"unknown preset {name!r}; choose one of {', '.join(presets)}, or give a .toml file"
            )
        text, label = presets[name], name
    return text, label


def read_preset(name: str) -> tuple[dict[str, Any], str]:
    """The parsed TOML of a bundled preset (by name) or of a file, and a label for messages."""
    text, label = preset_text(name)
    try:
        return tomllib.loads(text), label
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"preset {label}: invalid TOML ({exc})") from None


def read_settings(preset: str | None, overrides: list[str] | None = None) -> Settings:
    """The validated settings of ``preset`` (default: balanced) with ``--set`` overrides applied; their notices
    (a deprecated key, say) are in ``Settings.notices``, not printed."""
    name = preset or DEFAULT_PRESET
    data, label = read_preset(name)
    folder = absolute_path(name).parent if _is_file_reference(name) else None
    return build_settings(data, label, overrides or [], folder)


def load_settings(preset: str | None, overrides: list[str] | None = None) -> Settings:
    """``read_settings``, its notices printed."""
    settings = read_settings(preset, overrides)
    for notice in settings.notices:
        notify(notice)
    return settings


def describe(name: str) -> str:
    """A preset's one-line description (empty if it has none)."""
    data, _ = read_preset(name)
    return str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""


def add_preset_arguments(parser) -> None:
    """The --preset / --set options shared by the commands that take a preset."""
    parser.add_argument(
        "--preset",
        metavar="NAME|FILE",
        type=preset_reference,
        help="a bundled preset (see `presets`) or a .toml file",
    )
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], help="override a preset key"
    )
