"""The one home of every geometry rule: deinterlacing and inverse telecine, crop, output size and resize kernel.

Parsers for the settings' text (the command line's preset schema validates through them), the checks of a crop
against a frame, and ``plan_geometry``: what happens to a source's frames on their way through the model, as one
``Geometry`` the filter applies and the command line prints. No torch, VapourSynth or ffmpeg here (the command
line's own process imports this module).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from .errors import StreamDiffVSRError
from .options import MIN_SIDE, SCALE

DEINTERLACE = ("auto", "off", "bwdif", "bwdif-double", "ivtc")
MODES = ("off", "bwdif", "bwdif-double", "ivtc")  # what "auto" resolves to is one of these
# The final resize's kernels: core.resize's filters, lower case (Lanczos, Spline16, ...).
KERNELS = ("lanczos", "spline16", "spline36", "spline64", "bicubic", "bilinear", "point")
METHODS = ("after", "before")  # the final resize after the model (quality first), or a shrink before it
DEFAULT_DEINTERLACE = "auto"
DEFAULT_CROP = "none"
DEFAULT_SIZE = f"{SCALE}x"
DEFAULT_KERNEL = "lanczos"
DEFAULT_METHOD = "after"

# Field orders as ffprobe names them; the first letter is the field coded first, "tb"/"bt" are still interlaced.
INTERLACED = ("tt", "bb", "tb", "bt")
TOP_FIRST = ("tt", "tb")
FIELD_ORDERS = ("progressive", *INTERLACED, "unknown")
# How each mode changes the frame rate and count: ivtc keeps 4 frames of every 5 (29.97 -> 23.976).
RATE_CHANGE = {"off": Fraction(1), "bwdif": Fraction(1), "bwdif-double": Fraction(2), "ivtc": Fraction(4, 5)}
# The widest a WxH size may stray from the display aspect ratio: each side rounded to an even number.
ASPECT_SLACK = 2


class GeometryError(StreamDiffVSRError, ValueError):
    """A deinterlace, crop, size, kernel or method setting that cannot be applied; the message names the fix."""


@dataclass(frozen=True)
class Crop:
    """Pixels taken off each side."""

    left: int
    top: int
    right: int
    bottom: int

    def __str__(self) -> str:
        return f"{self.left},{self.top},{self.right},{self.bottom}"

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The frame size left of a ``width`` x ``height`` frame."""
        return width - self.left - self.right, height - self.top - self.bottom

    def saving(self, width: int, height: int) -> float:
        """The fraction of a ``width`` x ``height`` frame's pixels (and of the model's compute) it takes off."""
        w, h = self.size(width, height)
        return 1 - (w * h) / (width * height)


@dataclass(frozen=True)
class Size:
    """An output size as asked for: a ``factor`` of the model's input, a ``height`` (width from the display
    aspect ratio), or both ``width`` and ``height``."""

    factor: Fraction | None = None
    width: int | None = None
    height: int | None = None

    def __str__(self) -> str:
        if self.factor is not None:
            return f"{float(self.factor):g}x"
        return f"{self.width}x{self.height}" if self.width is not None else f"{self.height}p"


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a GeometryError naming ``name`` and what is allowed."""
    if not isinstance(value, str) or value not in choices:
        raise GeometryError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_crop(text: str | Crop) -> str | Crop:
    """``none``, ``auto`` (detect constant black borders) or a Crop from ``L,T,R,B`` pixels."""
    if isinstance(text, Crop):
        return text
    value = text.strip().lower() if isinstance(text, str) else ""
    if value in ("none", "auto"):
        return value
    parts = value.split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"\d+", p.strip()) for p in parts):
        raise GeometryError(
            f"crop must be none, auto or four pixel counts left,top,right,bottom (e.g. 0,140,0,140), got {text!r}"
        )
    return Crop(*(int(p) for p in parts))


def check_crop(crop: Crop, width: int, height: int, subsampling: tuple[int, int] = (1, 1)) -> Crop:
    """``crop`` if it fits a ``width`` x ``height`` frame whose chroma is subsampled by ``subsampling`` (log2 of
    the horizontal and vertical factors, VapourSynth's subsampling_w/h: (1, 1) is 4:2:0), else a GeometryError."""
    step_w, step_h = 1 << subsampling[0], 1 << subsampling[1]
    odd = [
        f"{name} {value}"
        for name, value, step in (
            ("left", crop.left, step_w),
            ("top", crop.top, step_h),
            ("right", crop.right, step_w),
            ("bottom", crop.bottom, step_h),
        )
        if value % step
    ]
    if odd:
        raise GeometryError(
            f"crop {crop}: {', '.join(odd)} {'does' if len(odd) == 1 else 'do'} not fit the source's chroma subsampling "
            f"({chroma_name(subsampling)}); use multiples of {step_w} for left/right and {step_h} for top/bottom"
        )
    w, h = crop.size(width, height)
    if w < MIN_SIDE or h < MIN_SIDE:
        left = "nothing" if w <= 0 or h <= 0 else f"{w}x{h}"
        raise GeometryError(
            f"crop {crop} leaves {left} of the {width}x{height} source; each side must keep at least "
            f"{MIN_SIDE} pixels: crop less"
        )
    return crop


def chroma_name(subsampling: tuple[int, int]) -> str:
    return {(0, 0): "4:4:4", (1, 0): "4:2:2", (1, 1): "4:2:0", (2, 0): "4:1:1"}.get(
        tuple(subsampling), f"subsampling {subsampling[0]},{subsampling[1]}"
    )


def chroma_subsampling(pix_fmt: str | None) -> tuple[int, int]:
    """log2 chroma subsampling (horizontal, vertical) of an ffmpeg pixel format (4:4:4 when unknown)."""
    for prefix, value in (("yuv420", (1, 1)), ("yuvj420", (1, 1)), ("nv12", (1, 1)), ("nv21", (1, 1)),
                          ("p010", (1, 1)), ("p016", (1, 1)), ("yuv422", (1, 0)), ("yuvj422", (1, 0)),
                          ("nv16", (1, 0)), ("yuv411", (2, 0)), ("yuv410", (2, 2)), ("yuv440", (0, 1))):  # fmt: skip
        if (pix_fmt or "").startswith(prefix):
            return value
    return (0, 0)


def parse_size(text: str | Size) -> Size:
    """``4x`` (the model's own), a factor from ``1x`` to ``4x`` (``2x``, ``1.5x``), a height (``2160p``) or
    ``WxH``; a GeometryError otherwise."""
    if isinstance(text, Size):
        return text
    value = text.strip().lower() if isinstance(text, str) else ""
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)x", value):
        factor = Fraction(m[1])
        if not 1 <= factor <= SCALE:
            raise GeometryError(
                f"size {text}: a factor must be from 1x to {SCALE}x (the model is {SCALE}x); "
                f"for a smaller picture use a height such as 720p"
            )
        return Size(factor=factor)
    if m := re.fullmatch(r"(\d+)p", value):
        return Size(height=even_positive("size", int(m[1]), text))
    if m := re.fullmatch(r"(\d+)x(\d+)", value):
        return Size(
            width=even_positive("size", int(m[1]), text), height=even_positive("size", int(m[2]), text)
        )
    raise GeometryError(
        f"size must be a factor (4x, 2x, 1.5x), a height (2160p) or width x height (3840x2160), got {text!r}"
    )


def even_positive(name: str, value: int, text: str) -> int:
    if value <= 0 or value % 2:
        raise GeometryError(
            f"{name} {text}: sides must be even numbers above 0 (the encoders' 4:2:0 needs it)"
        )
    return value


def round_even(value: float) -> int:
    """The nearest even integer, at least 2."""
    return max(2, 2 * round(value / 2))


def as_sar(sar: Fraction | tuple[int, int] | None) -> Fraction:
    """A sample aspect ratio; unknown (None, 0 or 0:1) is square pixels."""
    if sar is None:
        return Fraction(1)
    if isinstance(sar, tuple):
        num, den = sar
        return Fraction(num, den) if num > 0 and den > 0 else Fraction(1)
    return Fraction(sar) if sar > 0 else Fraction(1)


def target_size(size: str | Size, width: int, height: int, sar: Fraction | tuple[int, int] | None = None
                ) -> tuple[int, int, Fraction]:  # fmt: skip
    """The output's width, height and sample aspect ratio for ``size`` of a ``width`` x ``height`` model input
    with sample aspect ratio ``sar``: a factor keeps the sample aspect ratio, a height or WxH gives square pixels.
    A GeometryError where it asks for more than the model's 4x or changes the display aspect ratio."""
    size, sar = parse_size(size), as_sar(sar)
    if size.factor is not None:
        if size.factor == SCALE:
            return SCALE * width, SCALE * height, sar
        return round_even(width * size.factor), round_even(height * size.factor), sar
    display = width * sar  # the display width of the model's input, in its rows' pixels
    aspect = display / height
    if size.width is None:
        w, h = round_even(size.height * aspect), size.height
    else:
        w, h = size.width, size.height
        if abs(w - h * aspect) > ASPECT_SLACK and abs(h - w / aspect) > ASPECT_SLACK:
            keep = f"{round_even(h * aspect)}x{h}"
            raise GeometryError(
                f"size {size} changes the display aspect ratio {ratio_text(aspect)} of the {width}x{height} "
                f"model input to {ratio_text(Fraction(w, h))}; use {keep} or {h}p, or crop the source first"
            )
    scale = max(w / display, h / height)
    if h > SCALE * height or w > SCALE * display + ASPECT_SLACK:  # the width may round up to even
        most = (
            f"{SCALE * height}p" if size.width is None else f"{round_even(SCALE * display)}x{SCALE * height}"
        )
        raise GeometryError(
            f"size {size} is {scale:.2f}x of the {width}x{height} model input; the model is {SCALE}x: "
            f"ask for at most {most}"
        )
    return w, h, Fraction(1)


def ratio_text(aspect: Fraction) -> str:
    """An aspect ratio as people write it: 16:9 when it is close, else 2.39:1."""
    for name, value in (
        ("16:9", Fraction(16, 9)),
        ("4:3", Fraction(4, 3)),
        ("3:2", Fraction(3, 2)),
        ("1:1", Fraction(1)),
    ):
        if abs(aspect - value) < Fraction(1, 200):
            return name
    return f"{float(aspect):.2f}:1"


def field_order_name(field_based: int | None) -> str:
    """ffprobe's name of a VapourSynth ``_FieldBased`` frame prop value (0 progressive, 1 bottom, 2 top first)."""
    return {0: "progressive", 1: "bb", 2: "tt"}.get(field_based, "unknown")


def resolve_deinterlace(setting: str, field_order: str | None) -> tuple[str, str | None]:
    """The mode (``off``, ``bwdif``, ``bwdif-double`` or ``ivtc``) for ``setting`` on a source whose field order
    (ffprobe's name, or None/"unknown") is ``field_order``, and a one-line notice or None. ``auto`` deinterlaces
    (bwdif) only a source whose field order says it is interlaced."""
    check_choice("deinterlace", setting, DEINTERLACE)
    if field_order is not None:
        check_choice("field_order", field_order, FIELD_ORDERS)
    interlaced = field_order in INTERLACED
    if setting == "auto":
        return ("bwdif" if interlaced else "off"), None
    if setting == "ivtc" and field_order == "progressive":
        return "ivtc", (
            "deinterlace=ivtc on a source flagged progressive: field matching keeps progressive frames as they "
            "are and decimation still drops 1 frame in 5; use deinterlace=off unless the film is telecined"
        )
    return setting, None


def top_field_first(field_order: str | None) -> bool:
    """Whether the top field comes first; a source that does not say is taken as top field first (most are)."""
    return field_order in TOP_FIRST or field_order not in INTERLACED


def rate_change(mode: str) -> Fraction:
    """How ``mode`` changes the frame rate and the frame count (1, 2 or 4/5)."""
    return RATE_CHANGE[check_choice("deinterlace", mode, MODES)]


@dataclass(frozen=True)
class Geometry:
    """What happens to a source's frames: deinterlace, crop, the optional shrink before the model, the model's
    4x, the final resize. Sizes are (width, height); ``sar`` is the output's sample aspect ratio."""

    source: tuple[int, int]
    field_order: str
    deinterlace: str
    crop: Crop | None
    prepared: tuple[int, int]  # after deinterlace and crop
    model_input: tuple[int, int]  # the prepared frame, or with method=before the frame shrunk to target/4
    final: tuple[int, int]
    kernel: str
    method: str
    source_sar: Fraction = Fraction(1)
    sar: Fraction = Fraction(1)
    notices: tuple[
        str, ...
    ] = ()  # one line each for the user (ivtc on a progressive source, no border found)

    @property
    def model_output(self) -> tuple[int, int]:
        return SCALE * self.model_input[0], SCALE * self.model_input[1]

    @property
    def rate(self) -> Fraction:
        """How the frame rate and count change (``rate_change`` of the deinterlace mode)."""
        return rate_change(self.deinterlace)

    @property
    def shrinks_first(self) -> bool:
        return self.model_input != self.prepared

    @property
    def resizes_output(self) -> bool:
        return self.final != self.model_output

    def describe(self) -> str:
        """One line, steps that do nothing left out, e.g. ``1920x1080 tt -> bwdif -> crop 0,140,0,140 ->
        1920x800 -> model 7680x3200 -> lanczos 3840x1600``."""
        head = size_text(self.source)
        if self.source_sar != 1:
            head += f" SAR {self.source_sar.numerator}:{self.source_sar.denominator}"
        if self.field_order in INTERLACED:
            head += f" {self.field_order}"
        steps = [head]
        if self.deinterlace != "off":
            steps.append(self.deinterlace)
        if self.crop is not None:
            steps += [f"crop {self.crop}", size_text(self.prepared)]
        if self.shrinks_first:
            steps.append(f"{self.kernel} {size_text(self.model_input)}")
        steps.append(f"model {size_text(self.model_output)}")
        if self.resizes_output:
            steps.append(f"{self.kernel} {size_text(self.final)}")
        return " -> ".join(steps)

    def before_alternative(self) -> str | None:
        """Where the target is at most 2x and the model runs on the full frame (method=after), what method=before
        would cost instead, in one line; None otherwise."""
        if self.method != "after" or not self.resizes_output:
            return None
        w, h = self.final
        if w > 2 * self.prepared[0] * self.source_sar or h > 2 * self.prepared[1]:
            return None
        shrunk = before_input(w, h)
        share = (shrunk[0] * shrunk[1]) / (self.model_input[0] * self.model_input[1])
        return (
            f"method=before would run the model on {size_text(shrunk)} instead of {size_text(self.model_input)} "
            f"({share:.0%} of the model's pixels, about {1 / share:.1f}x faster), at some cost in detail"
        )


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def before_input(width: int, height: int) -> tuple[int, int]:
    """The model input whose 4x output is closest to a ``width`` x ``height`` target (method=before)."""
    return max(MIN_SIDE, round(width / SCALE)), max(MIN_SIDE, round(height / SCALE))


def plan_geometry(
    width: int,
    height: int,
    sar: Fraction | tuple[int, int] | None = None,
    field_order: str | None = None,
    deinterlace: str = DEFAULT_DEINTERLACE,
    crop: str | Crop | None = DEFAULT_CROP,
    size: str | Size = DEFAULT_SIZE,
    kernel: str = DEFAULT_KERNEL,
    method: str = DEFAULT_METHOD,
    subsampling: tuple[int, int] = (1, 1),
) -> Geometry:
    """The Geometry of a ``width`` x ``height`` source (sample aspect ratio ``sar``, ffprobe's ``field_order``,
    chroma ``subsampling`` as in ``check_crop``) for the settings; ``crop`` must be resolved already (a Crop,
    ``none`` or None: ``auto`` is the caller's detection). A GeometryError names the first setting that cannot
    be applied."""
    mode, notice = resolve_deinterlace(deinterlace, field_order)
    check_choice("kernel", kernel, KERNELS)
    check_choice("method", method, METHODS)
    parsed = parse_crop(crop) if crop is not None else "none"
    if parsed == "auto":
        raise GeometryError("crop=auto must be detected on the source before planning (detect_borders)")
    sar = as_sar(sar)
    if isinstance(parsed, Crop):
        check_crop(parsed, width, height, subsampling)
        if parsed == Crop(0, 0, 0, 0):
            parsed = None
    else:
        parsed = None
    prepared = parsed.size(width, height) if parsed else (width, height)
    if min(prepared) < MIN_SIDE:
        raise GeometryError(
            f"the source is {size_text(prepared)}; each side must be at least {MIN_SIDE} pixels"
        )
    fw, fh, out_sar = target_size(size, *prepared, sar)
    model_input = prepared
    if method == "before" and (fw, fh) != (SCALE * prepared[0], SCALE * prepared[1]):
        model_input = before_input(fw, fh)
    return Geometry(
        source=(width, height),
        field_order=field_order or "unknown",
        deinterlace=mode,
        crop=parsed,
        prepared=prepared,
        model_input=model_input,
        final=(fw, fh),
        kernel=kernel,
        method=method,
        source_sar=sar,
        sar=out_sar,
        notices=(notice,) if notice else (),
    )


def frame_count(count: int, mode: str) -> int:
    """The number of frames ``mode`` makes of ``count`` source frames (VDecimate drops 1 of each full cycle of 5
    and keeps a partial cycle whole; double-rate bwdif makes 2 of each)."""
    rate = rate_change(mode)
    return count - count // 5 if rate == Fraction(4, 5) else int(count * rate)
