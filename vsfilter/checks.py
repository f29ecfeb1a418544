"""Up-front checks of the clip and the settings: each failure is a ``vs.Error`` that says how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import vapoursynth as vs

from streamdiffvsr.errors import DeviceError
from streamdiffvsr.options import MATRIX_NAMES, MIN_SIDE, OptionError, check_options, guess_matrix
from streamdiffvsr.options import resolve_device as _resolve_device

NAME = "stream_diffvsr"
SUPPORTED_FORMATS = (vs.RGBS, vs.RGBH)


def error(message: str) -> vs.Error:
    return vs.Error(f"{NAME}: {message}")


def clip_matrix(clip: vs.VideoNode) -> str:
    """The YUV matrix name for ``clip``: its first frame's ``_Matrix`` prop, else ``options.guess_matrix``."""
    try:
        value = clip.get_frame(0).props.get("_Matrix")
    except vs.Error:
        value = None
    if isinstance(value, int) and value in MATRIX_NAMES and value != 0:
        return MATRIX_NAMES[value]
    return MATRIX_NAMES[guess_matrix(clip.width, clip.height)]


def conversion_hint(clip: vs.VideoNode) -> str:
    """The exact resize call that turns ``clip`` into RGBS."""
    fmt = clip.format
    if fmt.color_family == vs.YUV:
        return f'core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="{clip_matrix(clip)}")'
    return "core.resize.Bicubic(clip, format=vs.RGBS)"


def check_clip(clip: object) -> vs.VideoNode:
    """A constant-format, constant-size RGBS/RGBH clip whose sides the model can take, or a ``vs.Error``."""
    if not isinstance(clip, vs.VideoNode):
        raise error(f"clip must be a vs.VideoNode, got {type(clip).__name__}")
    if clip.format is None or clip.format.color_family == vs.UNDEFINED:
        raise error(
            "the clip has a variable format; convert every frame to one format first, "
            "e.g. clip = core.resize.Bicubic(clip, format=vs.RGBS) after making the format constant"
        )
    if clip.width == 0 or clip.height == 0:
        raise error("the clip has a variable frame size; resize every frame to one size first")
    if clip.format.id not in SUPPORTED_FORMATS:
        raise error(
            f"input format {clip.format.name} is not supported; only RGBS and RGBH are. "
            f"Convert it first: clip = {conversion_hint(clip)}"
        )
    if min(clip.width, clip.height) < MIN_SIDE:
        raise error(f"the clip is {clip.width}x{clip.height}; each side must be at least {MIN_SIDE} pixels")
    return clip


def check_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings (by option name) checked against ``streamdiffvsr.options.OPTIONS`` at the call (not at the
    first frame), normalised."""
    try:
        return check_options(values)
    except OptionError as exc:
        raise error(str(exc)) from None


def resolve_device(device_index: int | None) -> str:
    """``options.resolve_device``, its errors as ``vs.Error``."""
    try:
        return _resolve_device(device_index)
    except DeviceError as exc:
        raise error(str(exc)) from None
