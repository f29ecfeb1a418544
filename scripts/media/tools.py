"""Finding the external programs (vspipe, ffmpeg, ffprobe) and checking that ffmpeg has the chosen encoder.

``STREAMDIFFVSR_VSPIPE``, ``STREAMDIFFVSR_FFMPEG`` and ``STREAMDIFFVSR_FFPROBE`` override the search.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from streamdiffvsr.cli.errors import CliError

INSTALL_HINT = {
    "vspipe": "install VapourSynth (bash scripts/setup.sh puts vspipe in .venv/bin)",
    "ffmpeg": "install ffmpeg with libx265 (e.g. 'sudo apt-get install ffmpeg')",
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


def has_encoder(ffmpeg: str, encoder: str = "libx265") -> bool:
    """Whether this ffmpeg lists ``encoder`` (e.g. libx265, ffv1)."""
    try:
        out = subprocess.run(
            [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[1:2] == [encoder] for line in out.splitlines())


_LIBX265_COMPLAINT = re.compile(r"^\[libx265 @ [^\]]*\] (.*?)\.?$")


def x265_param_errors(ffmpeg: str, params: str) -> list[str]:
    """What libx265 says about ``params`` (unknown options, invalid values) when it opens with them; ffmpeg
    only warns about these and encodes without them, so a finished encode would hide the mistake."""
    command = [ffmpeg, "-hide_banner", "-v", "warning", "-f", "lavfi", "-i", "color=s=256x256:d=0.04"]
    command += ["-c:v", "libx265", "-x265-params", f"log-level=error:{params}", "-f", "null", "-"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"cannot run {ffmpeg} to check them ({exc})"]
    return [match[1] for line in result.stderr.splitlines() if (match := _LIBX265_COMPLAINT.match(line))]


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


def require_encode_tools(encoder: str = "libx265") -> Tools:
    """ffmpeg (with ``encoder``) and ffprobe, or a one-line CliError naming what is missing."""
    ffmpeg = require_tool("ffmpeg")
    if not has_encoder(ffmpeg, encoder):
        raise CliError(f"{ffmpeg} has no {encoder} encoder; {INSTALL_HINT['ffmpeg']}")
    return Tools(ffmpeg=ffmpeg, ffprobe=require_tool("ffprobe"))
