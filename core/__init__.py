"""Stream-DiffVSR streaming engine: faithful to the official checkpoint, constant memory, exact on resume.

Names are imported on first use, so the command line (``streamdiffvsr.cli``) starts without loading torch.
"""

from importlib import import_module

_EXPORTS = {
    "TemporalAutoencoderTiny": "autoencoder_temporal_tiny",
    "resolve_checkpoint": "locate",
    "StreamDiffVSR": "engine",
    "DeviceError": "errors",
    "FrameError": "errors",
    "ModelLoadError": "errors",
    "StreamDiffVSRError": "errors",
    "DEFAULT_MODEL": "options",
    "FLOW_BACKENDS": "options",
    "FLOW_CHOICES": "options",
    "MIN_SIDE": "options",
    "PRECISIONS": "options",
    "SCALE": "options",
    "Stream": "stream",
    "__version__": "version",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
