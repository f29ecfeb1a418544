"""The encoder's share of an encode's time: the settings' video encoder timed on frames the model rendered."""

from __future__ import annotations

import subprocess
import time

import numpy as np

from streamdiffvsr.cli.media.ffmpeg_cmd import video_options
from streamdiffvsr.cli.media.probe import SourceInfo
from streamdiffvsr.cli.settings.schema import Settings

SAMPLE_BYTES = 256 << 20  # the most RGB24 output frames a preview keeps to time the encoder on


def sample_size(width: int, height: int, wanted: int) -> int:
    """How many output frames of ``width`` x ``height`` to keep for timing the encoder (at least 2)."""
    return max(2, min(wanted, SAMPLE_BYTES // max(1, width * height * 3)))


def encoder_seconds_per_frame(
    ffmpeg: str, settings: Settings, info: SourceInfo, frames: list[np.ndarray], fps: float
) -> float | None:
    """Seconds per frame of the settings' encoder on ``frames`` (RGB24), its start included as a segment pays
    it; None when there are too few frames or the encoder fails here (the encode would say why)."""
    if len(frames) < 2:
        return None
    height, width = frames[0].shape[:2]
    options = video_options(settings.section("encoder"), info, tag_colour=False)
    command = [ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", f"{fps:g}", "-i", "-"]  # fmt: skip
    for name, value in options.items():
        command += [f"-{name}", str(value)]
    began = time.perf_counter()
    done = subprocess.run([*command, "-f", "null", "-"], input=b"".join(f.tobytes() for f in frames),
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        return None
    return (time.perf_counter() - began) / len(frames)
