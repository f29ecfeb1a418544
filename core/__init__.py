"""Stream-DiffVSR streaming engine: faithful to the official checkpoint, constant memory, exact on resume."""

from .autoencoder_temporal_tiny import TemporalAutoencoderTiny
from .checkpoint import DEFAULT_MODEL, PRECISIONS, resolve_checkpoint
from .engine import MIN_SIDE, SCALE, StreamDiffVSR
from .errors import FrameError, ModelLoadError, StreamDiffVSRError
from .flow import FLOW_BACKENDS
from .stream import Stream

__all__ = [
    "DEFAULT_MODEL",
    "FLOW_BACKENDS",
    "MIN_SIDE",
    "PRECISIONS",
    "SCALE",
    "FrameError",
    "ModelLoadError",
    "Stream",
    "StreamDiffVSR",
    "StreamDiffVSRError",
    "TemporalAutoencoderTiny",
    "resolve_checkpoint",
]
