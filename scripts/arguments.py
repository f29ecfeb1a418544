"""Argument types of the ``streamdiffvsr`` command. Every path a user gives is made absolute here, where the
arguments are read: nothing later (a render worker that evaluates a script in the script's folder, a Ray actor
on another node) resolves a path against a working directory."""

from __future__ import annotations

import os
from pathlib import Path


def absolute_path(text: str | os.PathLike[str]) -> Path:
    """A path as the user meant it from the folder they typed it in: ``~`` expanded, made absolute."""
    return Path(os.path.abspath(os.path.expanduser(text)))
