"""Up-front checks of the clip and the settings: each failure is a ``vs.Error`` that says how to fix it."""

from __future__ import annotations

import vapoursynth as vs

from streamdiffvsr.errors import DeviceError
from streamdiffvsr.options import (
    FLOW_CHOICES,
    FLOW_SCALE_BOUNDS,
    MATRIX_NAMES,
    MAX_CHAIN_BOUNDS,
    MIN_SIDE,
    NOISE_MODES,
    PRECISIONS,
    SCENE_THRESHOLD_BOUNDS,
    SEED_BOUNDS,
    SNAPSHOT_INTERVAL_BOUNDS,
    STEPS_BOUNDS,
    TIMESTEP_SPACINGS,
    guess_matrix,
)
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_settings(
    *,
    steps: int,
    precision: str | None,
    flow: str,
    flow_scale: float,
    seed: int,
    scene_detect: bool,
    noise: str,
    scene_threshold: float,
    max_chain: int,
    snapshot_interval: int,
    timestep_spacing: str | None,
    interval_name: str = "snapshot_interval",
    compile: bool = False,
) -> None:
    """Types and ranges of the plain-value settings, against ``streamdiffvsr.options``, checked at the call
    (not at the first frame)."""
    if not _is_int(steps) or steps not in STEPS_BOUNDS:
        raise error(f"steps must be a positive integer, at most {STEPS_BOUNDS.high:g}, got {steps!r}")
    if precision is not None and precision not in PRECISIONS:
        raise error(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if flow not in FLOW_CHOICES:
        raise error(f"flow must be one of {', '.join(FLOW_CHOICES)}, got {flow!r}")
    if not _is_number(flow_scale) or flow_scale not in FLOW_SCALE_BOUNDS:
        raise error(f"flow_scale must be in {FLOW_SCALE_BOUNDS.describe()}, got {flow_scale!r}")
    if not _is_int(seed) or seed not in SEED_BOUNDS:
        raise error(f"seed must be a non-negative integer (below 2**63), got {seed!r}")
    if not isinstance(scene_detect, bool) and scene_detect not in (0, 1):
        raise error(f"scene_detect must be True or False, got {scene_detect!r}")
    if noise not in NOISE_MODES:
        raise error(f"noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    if not _is_number(scene_threshold) or scene_threshold not in SCENE_THRESHOLD_BOUNDS:
        raise error(
            f"scene_threshold must be in {SCENE_THRESHOLD_BOUNDS.describe()}, got {scene_threshold!r}"
        )
    if not _is_int(max_chain) or max_chain not in MAX_CHAIN_BOUNDS:
        raise error(f"max_chain must be 0 (off) or a positive number of frames, got {max_chain!r}")
    if not _is_int(snapshot_interval) or snapshot_interval not in SNAPSHOT_INTERVAL_BOUNDS:
        raise error(f"{interval_name} must be a positive number of frames, got {snapshot_interval!r}")
    if timestep_spacing is not None and timestep_spacing not in TIMESTEP_SPACINGS:
        raise error(
            f"timestep_spacing must be None or one of {', '.join(TIMESTEP_SPACINGS)}, got {timestep_spacing!r}"
        )
    if not isinstance(compile, bool):
        raise error(f"compile must be True or False, got {compile!r}")


def resolve_device(device_index: int | None) -> str:
    """``options.resolve_device``, its errors as ``vs.Error``."""
    try:
        return _resolve_device(device_index)
    except DeviceError as exc:
        raise error(str(exc)) from None
