"""Preparing a source clip for the model (deinterlace, inverse telecine, crop) and sizing the model's output.

The rules live in ``streamdiffvsr.geometry``; this module reads a clip's facts (field order, sample aspect
ratio, chroma subsampling, black borders), and applies a ``Geometry`` with the PyPI plugin wheels
(vapoursynth-bwdif, vapoursynth-vivtc) and VapourSynth's resize.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import vapoursynth as vs

from streamdiffvsr.geometry import (
    DEFAULT_CROP,
    DEFAULT_DEINTERLACE,
    DEFAULT_KERNEL,
    DEFAULT_METHOD,
    DEFAULT_SIZE,
    KERNELS,
    Crop,
    Geometry,
    GeometryError,
    Size,
    check_choice,
    field_order_name,
    parse_crop,
    plan_geometry,
    target_size,
    top_field_first,
)
from streamdiffvsr.options import MIN_SIDE

core = vs.core

DEFAULT_SAMPLES = 100  # frames border detection reads, spread over the whole clip
# A row or column is picture where any pixel is brighter than black (or its chroma further from neutral) by this
# share of the value range; compressed black bars ring a few code values off black, and a dark frame's edge is
# kept by the other samples.
BLACK_MARGIN = 24 / 255


def error(name: str, message: str) -> vs.Error:
    return vs.Error(f"{name}: {message}")


def check_node(name: str, clip: object) -> vs.VideoNode:
    """A constant-format, constant-size clip, or a ``vs.Error``."""
    if not isinstance(clip, vs.VideoNode):
        raise error(name, f"clip must be a vs.VideoNode, got {type(clip).__name__}")
    if clip.format is None or clip.width == 0 or clip.height == 0:
        raise error(name, "the clip has a variable format or frame size; make them constant first")
    return clip


def clip_field_order(clip: vs.VideoNode) -> str:
    """ffprobe's name of the clip's field order, from its first frame's ``_FieldBased`` prop."""
    return field_order_name(clip.get_frame(0).props.get("_FieldBased"))


def clip_sar(clip: vs.VideoNode) -> Fraction:
    """The clip's sample aspect ratio from its first frame's ``_SARNum``/``_SARDen`` props (square if unset)."""
    props = clip.get_frame(0).props
    num, den = props.get("_SARNum", 0), props.get("_SARDen", 0)
    return Fraction(num, den) if num > 0 and den > 0 else Fraction(1)


def subsampling(clip: vs.VideoNode) -> tuple[int, int]:
    return clip.format.subsampling_w, clip.format.subsampling_h


def sample_positions(num_frames: int, samples: int) -> list[int]:
    """At most ``samples`` frame numbers spread evenly over the clip, each the middle of its stretch (fixed, so
    every worker that evaluates the same script finds the same borders)."""
    count = max(1, min(samples, num_frames))
    return sorted({(2 * i + 1) * num_frames // (2 * count) for i in range(count)})


def picture_masks(clip: vs.VideoNode, frame: vs.VideoFrame) -> list[tuple[np.ndarray, int, int]]:
    """Per plane: where the frame is picture rather than black, and the plane's log2 subsampling (w, h). Luma (or
    each RGB plane) is picture above black plus BLACK_MARGIN; chroma where it strays from neutral by that much
    (dark saturated colours, e.g. a deep blue, are picture though their luma is low)."""
    fmt = clip.format
    peak = 1.0 if fmt.sample_type == vs.FLOAT else (1 << fmt.bits_per_sample) - 1
    margin = BLACK_MARGIN * peak
    if fmt.color_family == vs.RGB:
        return [(np.asarray(frame[p]) > margin, 0, 0) for p in range(3)]
    limited = frame.props.get("_ColorRange", 1 if fmt.color_family == vs.YUV else 0) == 1
    black = 16 << (fmt.bits_per_sample - 8) if limited and fmt.sample_type == vs.INTEGER else 0
    masks = [(np.asarray(frame[0]) > black + margin, 0, 0)]
    if fmt.color_family == vs.YUV:
        neutral = 0 if fmt.sample_type == vs.FLOAT else 1 << (fmt.bits_per_sample - 1)
        for p in (1, 2):
            masks.append((np.abs(np.asarray(frame[p]).astype(np.float32) - neutral) > margin,
                          fmt.subsampling_w, fmt.subsampling_h))  # fmt: skip
    return masks


def picture_extent(clip: vs.VideoNode, frame: vs.VideoFrame) -> tuple[int, int, int, int] | None:
    """Black rows/columns at each side of one frame (left, top, right, bottom) in luma pixels, or None for an
    all-black frame."""
    sides: list[int] | None = None
    for mask, sw, sh in picture_masks(clip, frame):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            continue
        extent = [int(cols[0]) << sw, int(rows[0]) << sh, (mask.shape[1] - 1 - int(cols[-1])) << sw,
                  (mask.shape[0] - 1 - int(rows[-1])) << sh]  # fmt: skip
        sides = extent if sides is None else [min(a, b) for a, b in zip(sides, extent, strict=True)]
    return None if sides is None else (sides[0], sides[1], sides[2], sides[3])


def detect_borders(clip: vs.VideoNode, samples: int = DEFAULT_SAMPLES) -> Crop | None:
    """Constant black borders of ``clip`` over at most ``samples`` frames spread over the whole clip (each read
    by seeking; never the whole clip). A side is cropped only where no sampled frame has picture there; values
    are even and fit the chroma subsampling. None where no side has a border (or every sample is black)."""
    name = "detect_borders"
    check_node(name, clip)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise error(name, f"samples must be an integer >= 1, got {samples!r}")
    sides: list[int] | None = None
    for n in sample_positions(clip.num_frames, samples):
        extent = picture_extent(clip, clip.get_frame(n))
        if extent is not None:
            sides = list(extent) if sides is None else [min(a, b) for a, b in zip(sides, extent, strict=True)]
    if sides is None:
        return None
    step_w = max(2, 1 << clip.format.subsampling_w)
    step_h = max(2, 1 << clip.format.subsampling_h)
    left, top, right, bottom = (
        v - v % step for v, step in zip(sides, (step_w, step_h, step_w, step_h), strict=True)
    )
    crop = Crop(left, top, right, bottom)
    w, h = crop.size(clip.width, clip.height)
    if crop == Crop(0, 0, 0, 0) or w < MIN_SIDE or h < MIN_SIDE:
        return None
    return crop


def source_geometry(
    clip: vs.VideoNode,
    deinterlace: str = DEFAULT_DEINTERLACE,
    crop: str | Crop = DEFAULT_CROP,
    size: str | Size = DEFAULT_SIZE,
    kernel: str = DEFAULT_KERNEL,
    method: str = DEFAULT_METHOD,
    field_order: str | None = None,
    samples: int = DEFAULT_SAMPLES,
) -> Geometry:
    """The ``Geometry`` of ``clip`` for these settings: its field order (``field_order`` None: from the
    ``_FieldBased`` prop), sample aspect ratio and subsampling read from the clip; ``crop="auto"`` detected with
    ``detect_borders`` on the clip as it is (the crop applies after deinterlacing). ``describe()`` gives the one
    line to print, ``notices`` the lines worth telling (ivtc on a progressive source, no border found). A
    ``vs.Error`` names the setting that cannot be applied."""
    return planned("source_geometry", clip, deinterlace, crop, size, kernel, method, field_order, samples)


def planned(name: str, clip: object, deinterlace: str, crop: str | Crop, size: str | Size, kernel: str,
            method: str, field_order: str | None, samples: int = DEFAULT_SAMPLES) -> Geometry:  # fmt: skip
    """``source_geometry`` with its errors named after the public function ``name`` the user called."""
    clip = check_node(name, clip)
    order = field_order or clip_field_order(clip)
    try:
        parsed = parse_crop(crop)
        auto = parsed == "auto"
        if auto:  # on the source's frames: woven fields have their bars on the same rows, and a deinterlacer
            # would spread the picture's first row into the bar
            parsed = detect_borders(clip, samples)
        geometry = plan_geometry(
            clip.width, clip.height, clip_sar(clip), order, deinterlace, parsed, size, kernel, method,
            subsampling(clip),
        )  # fmt: skip
    except GeometryError as exc:
        raise error(name, str(exc)) from None
    if auto and parsed is None:
        notice = "crop=auto found no constant black border on the sampled frames; nothing is cropped"
        geometry = replace(geometry, notices=(*geometry.notices, notice))
    return geometry


def deinterlaced(clip: vs.VideoNode, mode: str, field_order: str) -> vs.VideoNode:
    """``clip`` deinterlaced (bwdif, same or double rate) or inverse telecined (VFM + VDecimate) by ``mode``."""
    if mode == "off":
        return clip
    tff = top_field_first(field_order)
    clip = core.std.SetFieldBased(clip, 2 if tff else 1)
    if mode == "ivtc":
        matched = core.vivtc.VFM(clip, order=int(tff))
        return core.std.SetFieldBased(core.vivtc.VDecimate(matched), 0)
    field = (3 if tff else 2) if mode == "bwdif-double" else int(tff)
    return core.std.SetFieldBased(core.bwdif.Bwdif(clip, field=field), 0)


def resized(clip: vs.VideoNode, width: int, height: int, kernel: str, sar: Fraction) -> vs.VideoNode:
    """``clip`` resized to ``width`` x ``height`` with ``kernel``, its sample aspect ratio props set to ``sar``."""
    if (clip.width, clip.height) != (width, height):
        resize = getattr(core.resize, kernel.capitalize())  # geometry.KERNELS are core.resize's names
        clip = resize(clip, width, height)
    return core.std.SetFrameProps(clip, _SARNum=sar.numerator, _SARDen=sar.denominator)


def prepare_source(
    clip: vs.VideoNode,
    deinterlace: str = DEFAULT_DEINTERLACE,
    crop: str | Crop = DEFAULT_CROP,
    field_order: str | None = None,
    size: str | Size = DEFAULT_SIZE,
    kernel: str = DEFAULT_KERNEL,
    method: str = DEFAULT_METHOD,
    geometry: Geometry | None = None,
) -> vs.VideoNode:
    """``clip`` ready for the model: deinterlaced or inverse telecined (``deinterlace``: auto, off, bwdif,
    bwdif-double, ivtc; auto deinterlaces only a clip whose field order says interlaced), then cropped (``crop``:
    none, auto or ``"L,T,R,B"``). ``field_order`` (ffprobe's tt, bb, progressive...) overrides the clip's
    ``_FieldBased`` prop. ``size``, ``kernel`` and ``method`` matter only with ``method="before"``: the frame is
    then shrunk so the model's 4x output is the target. ``geometry`` (from ``source_geometry``) instead of the
    settings applies that plan without reading the clip again."""
    check_node("prepare_source", clip)
    if geometry is None:
        geometry = planned("prepare_source", clip, deinterlace, crop, size, kernel, method, field_order)
    elif (clip.width, clip.height) != geometry.source:
        raise error(
            "prepare_source",
            f"the geometry is for a {geometry.source[0]}x{geometry.source[1]} source, the clip is "
            f"{clip.width}x{clip.height}",
        )
    clip = deinterlaced(clip, geometry.deinterlace, geometry.field_order)
    if geometry.crop is not None:
        c = geometry.crop
        clip = core.std.Crop(clip, c.left, c.right, c.top, c.bottom)
    if geometry.shrinks_first:
        sar = geometry.source_sar * Fraction(geometry.prepared[0] * geometry.model_input[1],
                                             geometry.prepared[1] * geometry.model_input[0])  # fmt: skip
        clip = resized(clip, *geometry.model_input, geometry.kernel, sar)
    return clip


def size_output(
    clip: vs.VideoNode,
    size: str | Size = DEFAULT_SIZE,
    kernel: str = DEFAULT_KERNEL,
    sar: Fraction | tuple[int, int] | None = None,
    geometry: Geometry | None = None,
) -> vs.VideoNode:
    """The final resize of the model's output ``clip``: ``size`` is ``4x`` (unchanged), a factor of the model's
    input (``2x``, ``1.5x``), a height (``2160p``: width from the display aspect ratio, square pixels) or ``WxH``
    (refused where it changes the aspect ratio), with ``kernel`` (lanczos, spline36, bicubic, ...). ``sar`` is
    the model input's sample aspect ratio (None: square pixels). ``geometry`` (from ``source_geometry``) instead
    of the settings resizes to its final size."""
    name = "size_output"
    check_node(name, clip)
    if geometry is not None:
        if (clip.width, clip.height) != geometry.model_output:
            raise error(
                name,
                f"the geometry's model output is {geometry.model_output[0]}x{geometry.model_output[1]}, "
                f"the clip is {clip.width}x{clip.height}",
            )
        if not geometry.resizes_output:
            return clip
        return resized(clip, *geometry.final, geometry.kernel, geometry.sar)
    if clip.width % 4 or clip.height % 4:
        raise error(name, f"the clip is {clip.width}x{clip.height}, not the model's 4x output")
    try:
        width, height, out_sar = target_size(size, clip.width // 4, clip.height // 4, sar)
        check_choice("kernel", kernel, KERNELS)
    except GeometryError as exc:
        raise error(name, str(exc)) from None
    if (width, height) == (clip.width, clip.height):
        return clip
    return resized(clip, width, height, kernel, out_sar)
