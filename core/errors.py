"""Errors that name the user's problem and its fix (the filter and the CLI turn them into one-line messages)."""


class StreamDiffVSRError(Exception):
    """Base class of every error a user can cause and fix."""


class ModelLoadError(StreamDiffVSRError):
    """A checkpoint, its components or the flow weights could not be found or loaded."""


class NotDownloadable(ModelLoadError):
    """Weights that are neither cached nor downloadable here (no network, or offline mode); ``cache`` is the
    folder they would be in, for a copy from a machine that has them."""

    def __init__(self, message: str, cache: str) -> None:
        super().__init__(message)
        self.cache = cache


class FrameError(StreamDiffVSRError):
    """A frame of the wrong shape, size or value range was given to a stream."""


class DeviceError(StreamDiffVSRError):
    """The device asked for does not exist or cannot be used."""
