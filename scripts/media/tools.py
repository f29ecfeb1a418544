"""Finding the external programs (vspipe, ffmpeg, ffprobe) and checking that ffmpeg has the chosen encoder.

``STREAMDIFFVSR_VSPIPE``, ``STREAMDIFFVSR_FFMPEG`` and ``STREAMDIFFVSR_FFPROBE`` override the search.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.settings.codecs import Codec

INSTALL_HINT = {
    "vspipe": "install VapourSynth (bash scripts/setup.sh puts vspipe in .venv/bin)",
    "ffmpeg": "install ffmpeg (e.g. 'sudo apt-get install ffmpeg')",
    "ffprobe": "install ffmpeg, which ships ffprobe (e.g. 'sudo apt-get install ffmpeg')",
}


def find_tool(name: str) -> str | None:
    """Path of ``name``: the env override, then beside this Python (a venv's bin/), then PATH; None if absent."""
    override = os.environ.get(f"STREAMDIFFVSR_{name.upper()}")
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_tool(name: str) -> str:
    """Like ``find_tool`` but a missing tool is a one-line CliError with the fix."""
    path = find_tool(name)
    if path is None:
        where = os.environ.get(f"STREAMDIFFVSR_{name.upper()}")
        found = f" (STREAMDIFFVSR_{name.upper()}={where} is not an executable file)" if where else ""
        raise CliError(f"{name} not found{found}; {INSTALL_HINT[name]}")
    return path


def has_encoder(ffmpeg: str, encoder: str) -> bool:
    """Whether this ffmpeg lists ``encoder`` (e.g. libx265, ffv1)."""
    try:
        out = subprocess.run(
            [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[1:2] == [encoder] for line in out.splitlines())


def param_errors(ffmpeg: str, codec: Codec, encoder: Mapping[str, Any]) -> list[str]:
    """What ``codec``'s ffmpeg wrapper says about its parameter list for the ``encoder`` settings (unknown
    options, invalid values) when the encoder opens with it; ffmpeg only warns about these and encodes without
    them, so a finished encode would hide the mistake."""
    command = [ffmpeg, "-hide_banner", "-v", "warning", "-f", "lavfi", "-i", "color=s=256x256:d=0.04"]
    command += ["-c:v", codec.encoder, f"-{codec.params_option}", codec.params(encoder)]
    try:
        result = subprocess.run([*command, "-f", "null", "-"], capture_output=True, text=True, timeout=60,
                                check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"cannot run {ffmpeg} to check them ({exc})"]
    complaint = re.compile(rf"^\[{re.escape(codec.encoder)} @ [^\]]*\] (.*?)\.?$")
    return [match[1] for line in result.stderr.splitlines() if (match := complaint.match(line))]


def check_params(ffmpeg: str, codec: Codec, encoder: Mapping[str, Any]) -> None:
    """The user's parameter list for ``codec`` (its ``params_key``), if any, as its encoder takes it; else a
    one-line CliError naming what the encoder refused."""
    key = codec.params_key
    if key is None or not (params := encoder.get(key.name)):
        return
    if errors := param_errors(ffmpeg, codec, encoder):
        raise CliError(f"encoder.{key.name} {params!r}: {'; '.join(errors)} (see `{key.reference}`)")


def tool_version(path: str, flag: str = "-version") -> str:
    """The first line a tool prints for its version flag ('' if it cannot run)."""
    try:
        result = subprocess.run([path, flag], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else ""


@dataclass(frozen=True)
class Tools:
    """The programs the encode runs on this machine (a render worker on another node finds its own)."""

    ffmpeg: str
    ffprobe: str


def require_encode_tools(encoder: str) -> Tools:
    """ffmpeg (with ``encoder``) and ffprobe, or a one-line CliError naming what is missing."""
    ffmpeg = require_tool("ffmpeg")
    if not has_encoder(ffmpeg, encoder):
        raise CliError(f"{ffmpeg} has no {encoder} encoder; install an ffmpeg built with it (e.g. 'sudo apt-get "
                       "install ffmpeg')")  # fmt: skip
    return Tools(ffmpeg=ffmpeg, ffprobe=require_tool("ffprobe"))
