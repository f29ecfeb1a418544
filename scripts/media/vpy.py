"""The generated ``.vpy`` (from ``template.vpy``) and the vspipe command that runs a script.

Only validated, non-path settings are written into the script, as Python literals; paths reach it through
``vspipe --arg name=value`` and are never pasted into its source.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from streamdiffvsr.cli.settings.codecs import PIXEL_FORMATS
from streamdiffvsr.cli.settings.presets import bundled_presets
from streamdiffvsr.cli.settings.schema import KEYS, Settings

TEMPLATE = "template.vpy"


def _describe_source(settings: Settings) -> str:
    # Only names we know are safe to print: a bundled preset's name and schema key names (never a file path).
    label = f'preset "{settings.source}"' if settings.source in bundled_presets() else "a preset file"
    keys = [item.partition("=")[0].strip().rpartition(".")[2] for item in settings.overrides]
    return label + (f" with --set {', '.join(keys)}" if keys else "")


def _filter_option_lines(settings: Settings) -> str:
    lines = []
    for key in KEYS:
        if key.section != "engine" or key.kind == "path":
            continue
        value = settings[key.name]
        if value is None:
            lines.append(f"    # {key.name!r}: ...,  # {key.help}; {key.allowed()}")
        else:
            lines.append(f"    {key.name!r}: {value!r},  # {key.help}")
    return "\n".join(lines)


def render_script(settings: Settings) -> str:
    """The generated .vpy text for ``settings``."""
    text = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    pix_fmt = settings["pix_fmt"]
    return Template(text).substitute(
        source=_describe_source(settings),
        filter_options=_filter_option_lines(settings),
        pix_fmt=pix_fmt,
        vs_format=PIXEL_FORMATS[pix_fmt],
    )


def vspipe_command(
    vspipe: str, script: Path, args: dict[str, str], start: int | None = None, end: int | None = None
) -> list[str]:
    """``vspipe -c y4m -p [--start N] [--end N] --arg k=v ... SCRIPT -`` (y4m on stdout, progress on stderr)."""
    command = [vspipe, "--container", "y4m", "--progress"]
    if start is not None:
        command += ["--start", str(start)]
    if end is not None:
        command += ["--end", str(end)]
    for name, value in args.items():
        command += ["--arg", f"{name}={value}"]
    return [*command, str(script.absolute()), "-"]
