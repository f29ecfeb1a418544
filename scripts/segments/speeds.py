"""Measured speeds, kept for later estimates: what ``preview`` measured for one setting on this machine, read back
by ``encode --dry-run`` for the same settings, model, frame size, device and thread count."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.settings.schema import Settings

FILE = "speeds.json"
KEPT = 64  # the most recent measurements kept


@dataclass(frozen=True)
class Speed:
    """One worker alone on this machine: seconds per frame (model and encoder together), seconds to start."""

    seconds_per_frame: float
    start_seconds: float
    measured: str  # by what and when, in words ("preview, 2026-12-05 05:40 UTC")


def speed_key(settings: Settings, model: Path, size: tuple[int, int], device: str, threads: int) -> str:
    """What a speed depends on: every engine and encoder setting, the model, the source's frame size, the
    device and the networks' threads."""
    chosen = settings.section("engine") | settings.section("encoder")
    what = {"settings": chosen, "model": str(model), "size": list(size), "device": device, "threads": threads}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _path() -> Path:
    from streamdiffvsr.layout import cache_dir

    return cache_dir() / FILE


def _read() -> dict[str, Any]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(key: str, seconds_per_frame: float, start_seconds: float, by: str) -> Speed:
    """Keep a measurement (atomically; a cache that cannot be written only loses it) and return it."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    speed = Speed(seconds_per_frame, start_seconds, f"{by}, {when}")
    entries = {k: v for k, v in _read().items() if k != key}
    entries[key] = asdict(speed)
    entries = dict(list(entries.items())[-KEPT:])
    path = _path()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{FILE}.{os.getpid()}")
        partial.write_text(json.dumps(entries, indent=1), encoding="utf-8")
        os.replace(partial, path)
    return speed


def recorded(key: str) -> Speed | None:
    """The measurement kept for ``key``, if any."""
    entry = _read().get(key)
    try:
        return Speed(float(entry["seconds_per_frame"]), float(entry["start_seconds"]), str(entry["measured"]))
    except (TypeError, KeyError, ValueError):
        return None
