"""Paths that reach a .vpy as ``vspipe --arg`` values, resolved the way the user meant them."""

from __future__ import annotations

import os
from pathlib import Path

import vapoursynth as vs

from streamdiffvsr.layout import cache_dir


def source_index_folder() -> bytes:
    """Where BestSource keeps the indexes of the videos it reads: the package's cache folder
    (``$STREAMDIFFVSR_CACHE/bsindex``, else ``~/.cache/streamdiffvsr/bsindex``), not its default ``~/bsindex``."""
    return os.fsencode(cache_dir() / "bsindex")


def user_path(value: str, name: str = "src") -> str:
    """``value`` as an existing path. A relative one is looked up first in the folder vspipe was run in (the
    shell's $PWD: vspipe moves the working directory to the script's folder while it runs the script), then in
    the script's folder; a ``vs.Error`` naming both places (and the fix) if it is in neither."""
    path = Path(value).expanduser()
    if path.is_absolute():
        if not path.exists():
            raise vs.Error(f"--arg {name}={value}: no such file")
        return str(path)
    places = [Path(os.environ["PWD"])] if os.path.isdir(os.environ.get("PWD", "")) else []
    places += [Path.cwd()]
    for folder in dict.fromkeys(places):
        if (folder / path).exists():
            return str(folder / path)
    where = " or ".join(str(folder) for folder in dict.fromkeys(places))
    raise vs.Error(f"--arg {name}={value}: no such file in {where}; pass an absolute path")
