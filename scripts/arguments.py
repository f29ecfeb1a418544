"""Argument types of the ``streamdiffvsr`` command. Every path a user gives is made absolute here, where the
arguments are read: nothing later (a render worker that evaluates a script in the script's folder, a Ray actor
on another node) resolves a path against a working directory. Every number is refused here in argparse's
one-line error (exit 2) if it is NaN, infinite or below its bound, before anything runs."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path


def absolute_path(text: str | os.PathLike[str]) -> Path:
    """A path as the user meant it from the folder they typed it in: ``~`` expanded, made absolute."""
    return Path(os.path.abspath(os.path.expanduser(text)))


def whole(low: int) -> Callable[[str], int]:
    """An integer of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low} (got {value})")
        return value

    parse.__name__ = "integer"
    return parse


def positive(text: str) -> float:
    """A finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0 (got {text})")
    return value


def given(meaning: str) -> Callable[[str], str]:
    """A value that is not empty: ``--ray ""`` (an unset shell variable) is refused rather than quietly taken as
    the option left out; ``meaning`` says what leaving it out does."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"is empty; leave the option out for {meaning}")
        return text

    parse.__name__ = "value"
    return parse
