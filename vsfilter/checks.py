"""Up-front checks of the clip and the settings: each failure is a ``vs.Error`` that says how to fix it."""

from __future__ import annotations

import vapoursynth as vs

from streamdiffvsr import FLOW_CHOICES, MIN_SIDE, PRECISIONS, SCALE

NAME = "stream_diffvsr"
SUPPORTED_FORMATS = (vs.RGBS, vs.RGBH)

# Values of the _Matrix frame prop (ITU-T H.273) and their names for resize's matrix_in_s.
MATRIX_NAMES = {
    0: "rgb",
    1: "709",
    4: "fcc",
    5: "470bg",
    6: "170m",
    7: "240m",
    8: "ycgco",
    9: "2020ncl",
    10: "2020cl",
    12: "chromancl",
    13: "chromacl",
    14: "ictcp",
}


def error(message: str) -> vs.Error:
    return vs.Error(f"{NAME}: {message}")


def guess_matrix(clip: vs.VideoNode) -> str:
    """The YUV matrix name for ``clip``: its first frame's ``_Matrix`` prop, else 709 for HD and 170m for SD."""
    try:
        value = clip.get_frame(0).props.get("_Matrix")
    except vs.Error:
        value = None
    if isinstance(value, int) and value in MATRIX_NAMES and value != 0:
        return MATRIX_NAMES[value]
    return "709" if clip.width > 1024 or clip.height > 576 else "170m"


def conversion_hint(clip: vs.VideoNode) -> str:
    """The exact resize call that turns ``clip`` into RGBS."""
    fmt = clip.format
    if fmt.color_family == vs.YUV:
        return f'core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="{guess_matrix(clip)}")'
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


def check_settings(
    *,
    steps: int,
    precision: str | None,
    flow: str,
    flow_scale: float,
    scene_threshold: float,
    max_chain: int,
    checkpoint_interval: int,
) -> None:
    """Flat checks of the plain-value settings."""
    if not isinstance(steps, int) or steps < 1:
        raise error(f"steps must be a positive integer, got {steps!r}")
    if precision is not None and precision not in PRECISIONS:
        raise error(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if flow not in FLOW_CHOICES:
        raise error(f"flow must be one of {', '.join(FLOW_CHOICES)}, got {flow!r}")
    if not 0 < flow_scale <= SCALE:
        raise error(f"flow_scale must be in (0, {SCALE}], got {flow_scale!r}")
    if not 0 < scene_threshold <= 1:
        raise error(f"scene_threshold must be in (0, 1], got {scene_threshold!r}")
    if not isinstance(max_chain, int) or max_chain < 0:
        raise error(f"max_chain must be 0 (off) or a positive number of frames, got {max_chain!r}")
    if not isinstance(checkpoint_interval, int) or checkpoint_interval < 1:
        raise error(f"checkpoint_interval must be a positive number of frames, got {checkpoint_interval!r}")


def resolve_device(device_index: int | None) -> str:
    """None -> cuda:0 if CUDA is available, else cpu; an index -> that CUDA device, which must exist."""
    import torch

    if device_index is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if not isinstance(device_index, int) or isinstance(device_index, bool):
        raise error(f"device_index must be an integer or None, got {device_index!r}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise error(
            f"device_index={device_index} asks for a CUDA device, but CUDA is not available "
            f"(torch {torch.__version__}, {build}); leave device_index=None to run on the CPU"
        )
    count = torch.cuda.device_count()
    if not 0 <= device_index < count:
        raise error(
            f"device_index={device_index} is out of range: there are {count} CUDA device(s) (0..{count - 1})"
        )
    return f"cuda:{device_index}"
