"""VapourSynth filter: ``stream_diffvsr(clip, ...)``, exact under any request order."""

from .filter import ANCHOR_PROP, frame_server, stream_diffvsr

__all__ = ["ANCHOR_PROP", "frame_server", "stream_diffvsr"]
