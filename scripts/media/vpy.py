"""The generated ``.vpy`` (from ``template.vpy``).

Only validated, non-path settings are written into the script, as Python literals; paths reach it as script
arguments (``vspipe --arg name=value`` by hand) and are never pasted into its source.
"""

from __future__ import annotations

from importlib import resources
from string import Template

from streamdiffvsr.cli.settings.codecs import PIXEL_FORMATS
from streamdiffvsr.cli.settings.presets import bundled_presets
from streamdiffvsr.cli.settings.schema import KEYS, Settings, find_key

TEMPLATE = "template.vpy"


def _describe_source(settings: Settings) -> str:
    # Only names we know are safe to print: a bundled preset's name and schema key names (never a file path).
    label = f'preset "{settings.source}"' if settings.source in bundled_presets() else "a preset file"
    # segment keys say how an encode splits and runs the script, not what it computes: a resume that sets the
    # thread count its segments were rendered with runs the same script
    names = (item.partition("=")[0].strip() for item in settings.overrides)
    keys = [name.rpartition(".")[2] for name in names if find_key(name).section != "segment"]
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


def _geometry_option_lines(settings: Settings) -> str:
    return "\n".join(
        f"    {key.name!r}: {settings[key.name]!r},  # {key.section}.{key.name}: {key.allowed()}"
        for key in KEYS
        if key.section in ("input", "output")
    )


def generate_script(settings: Settings) -> str:
    """The generated .vpy text for ``settings``."""
    text = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    pix_fmt = settings["pix_fmt"]
    return Template(text).substitute(
        source=_describe_source(settings),
        filter_options=_filter_option_lines(settings),
        geometry_options=_geometry_option_lines(settings),
        pix_fmt=pix_fmt,
        vs_format=PIXEL_FORMATS[pix_fmt],
    )
