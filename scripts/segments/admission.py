"""Whether a machine can render segments of an encode: the one check every pool's remote worker runs before it
takes a job (the same package version as the command that started the encode, ffmpeg and ffprobe at hand)."""

from __future__ import annotations

import importlib.metadata

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.tools import require_tool

DISTRIBUTION = "vs-streamdiffvsr"


def package_version() -> str:
    """This package's installed version ("none" where the metadata is missing)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def node_problem(version: str) -> str | None:
    """Why the machine this runs on cannot render segments of an encode started with package ``version``:
    another version here, or no ffmpeg/ffprobe. None if it can."""
    here = package_version()
    if here != version:
        return f"it has {DISTRIBUTION} {here}, this encode {version}; install the same version on every node"
    try:
        require_tool("ffmpeg")
        require_tool("ffprobe")
    except CliError as exc:
        return str(exc)
    return None
