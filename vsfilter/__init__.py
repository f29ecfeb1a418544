"""VapourSynth filter: ``stream_diffvsr(clip, ...)``, exact under any request order."""

from .filter import ANCHOR_PROP, frame_server, stream_diffvsr
from .prepare import detect_borders, prepare_source, size_output, source_geometry

__all__ = [
    "ANCHOR_PROP",
    "detect_borders",
    "frame_server",
    "prepare_source",
    "size_output",
    "source_geometry",
    "stream_diffvsr",
]
