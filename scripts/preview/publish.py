"""Writing the preview's files all or nothing: each under a hidden temporary name, renamed once all are written."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB24 array as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def publish(files: dict[Path, bytes]) -> None:
    """Write every file, or (on any failure) none: no half-written file is ever left under its name."""
    partials = {path: path.with_name(f".{path.name}.partial-{os.getpid()}") for path in files}
    try:
        for path, data in files.items():
            partials[path].write_bytes(data)
        for path, partial in partials.items():
            os.replace(partial, path)
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
