"""The codec registry: everything that differs between the video codecs ``encoder.codec`` offers.

Adding a codec is one ``Codec`` entry in ``CODECS``: its ffmpeg encoder, the encoder keys it reads (speed preset,
tune, extra parameters), its quality range, pixel formats and containers, its own parameter list and how it
spells HDR10 metadata there. The schema, the ffmpeg command, the tool and parameter checks and ``info`` read this
module and nothing else about codecs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Encoder pixel format -> VapourSynth format name (the .vpy converts to it; ffmpeg receives it as is).
PIXEL_FORMATS = {
    "yuv420p": "YUV420P8",
    "yuv422p": "YUV422P8",
    "yuv444p": "YUV444P8",
    "yuv420p10le": "YUV420P10",
    "yuv422p10le": "YUV422P10",
    "yuv444p10le": "YUV444P10",
    "yuv420p12le": "YUV420P12",
    "yuv422p12le": "YUV422P12",
    "yuv444p12le": "YUV444P12",
}
X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip
X26X_TUNES = ("psnr", "ssim", "grain", "fastdecode", "zerolatency", "animation")
CRF_MAX = 63  # the largest any codec takes (svtav1); each codec's own is Codec.crf_max


@dataclass(frozen=True)
class Hdr10:
    """A source's HDR10 static metadata in the units of the HEVC and H.264 SEI messages: the mastering
    display (SMPTE ST 2086) as the x, y of its green, blue and red primaries and white point in 1/50000 and
    its maximum and minimum luminance in 1/10000 cd/m2; the content light level as MaxCLL, MaxFALL in cd/m2."""

    mastering: tuple[int, ...] | None  # gx, gy, bx, by, rx, ry, wx, wy, max, min
    light_level: tuple[int, int] | None

    def mastering_display(self, decimal: bool) -> str:
        """The mastering display as G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min): in the SEI's units, or (``decimal``)
        chromaticities from 0 to 1 and luminance in cd/m2, written exactly (0.265, 1000, 0.005)."""
        assert self.mastering is not None

        def number(units: int, per_one: int) -> str:
            return f"{Decimal(units) / per_one:f}" if decimal else str(units)

        gx, gy, bx, by, rx, ry, wx, wy, high, low = self.mastering
        points = (("G", gx, gy), ("B", bx, by), ("R", rx, ry), ("WP", wx, wy))
        xy = "".join(f"{label}({number(x, 50000)},{number(y, 50000)})" for label, x, y in points)
        return f"{xy}L({number(high, 10000)},{number(low, 10000)})"


@dataclass(frozen=True)
class Hdr10Syntax:
    """How a codec's parameter list spells HDR10 static metadata: its two keys, and whether it takes the
    numbers as decimals (SVT-AV1: chromaticity 0..1, luminance in cd/m2) or in the SEI's units (x265, x264)."""

    mastering_key: str
    light_key: str
    decimal: bool = False

    def params(self, hdr10: Hdr10) -> list[str]:
        """``key=value`` items carrying ``hdr10`` (only the parts it has)."""
        found = []
        if hdr10.mastering is not None:
            found.append(f"{self.mastering_key}={hdr10.mastering_display(self.decimal)}")
        if hdr10.light_level is not None:
            found.append(f"{self.light_key}={hdr10.light_level[0]},{hdr10.light_level[1]}")
        return found


@dataclass(frozen=True)
class ParamsKey:
    """The encoder key holding the user's own parameters for a codec (``key=value:key=value``)."""

    name: str
    example: str  # for the key's allowed values
    reference: str  # where its parameters are listed, for the check's error


@dataclass(frozen=True)
class SpeedPreset:
    """A codec's speed preset: its encoder key, the ffmpeg option carrying it, and its values: named
    (``choices``, ``default``) or numbered from 0 (the slowest) to ``slowest_last`` (no default: the encoder's)."""

    key: str
    choices: tuple[str, ...] = ()
    default: str | None = None
    slowest_last: int | None = None
    option: str = "preset"


@dataclass(frozen=True)
class Codec:
    """One video codec. ``speed`` is its speed preset (None: it has none); ``crf_max`` None means lossless (no
    rate control), else the ffmpeg option ``rate_option`` carries encoder.crf. Its parameter list goes through the ffmpeg option
    ``params_option`` (None: it has none): ``fixed_params`` first, then the source's HDR10 metadata in its
    ``hdr10`` syntax (None: it cannot carry it), then the user's ``params_key``."""

    name: str
    encoder: str  # the ffmpeg encoder
    description: str
    crf_max: float | None
    speed: SpeedPreset | None
    tunes: tuple[str, ...]
    pixel_formats: tuple[str, ...]
    containers: tuple[str, ...]  # ffmpeg muxers it can be written into
    mp4_tag: str | None = None  # the sample entry players expect in mp4 (hvc1 for HEVC)
    fixed_options: tuple[tuple[str, str], ...] = ()
    params_option: str | None = None  # e.g. x265-params
    fixed_params: tuple[str, ...] = ()
    hdr10: Hdr10Syntax | None = None
    params_key: ParamsKey | None = None
    # Another codec's speed preset key this one once read: still taken, with a notice.
    former_preset_key: str | None = None
    rate_option: str = "crf"
    tune_option: str = "tune"

    @property
    def preset_key(self) -> str | None:
        """The encoder key of its speed preset (None: it has none)."""
        return self.speed.key if self.speed else None

    def options(self, encoder: Mapping[str, Any]) -> dict[str, str]:
        """The ffmpeg output options of this codec for the encoder settings (codec, rate, speed, tune); its
        parameter list is ``params``."""
        options = {"c:v": self.encoder, "pix_fmt": str(encoder["pix_fmt"]), **dict(self.fixed_options)}
        if self.crf_max is not None:
            options[self.rate_option] = f"{encoder['crf']:g}"
        if self.speed is not None and encoder.get(self.speed.key) is not None:
            options[self.speed.option] = str(encoder[self.speed.key])
        if self.tunes and encoder.get("tune"):
            options[self.tune_option] = str(encoder["tune"])
        return options

    def params(self, encoder: Mapping[str, Any], hdr10: Hdr10 | None = None) -> str:
        """The value of ``params_option`` for the encoder settings, carrying ``hdr10`` where this codec can
        ('': nothing to pass)."""
        if self.params_option is None:
            return ""
        found = list(self.fixed_params)
        if hdr10 is not None and self.hdr10 is not None:
            found += self.hdr10.params(hdr10)
        if self.params_key is not None and encoder.get(self.params_key.name):
            found.append(encoder[self.params_key.name])  # the user's come last: they win
        return ":".join(found)

    def hdr10_notice(self, hdr10: Hdr10 | None) -> str | None:
        """A notice when the source has HDR10 metadata this codec cannot carry (None: nothing is lost)."""
        if hdr10 is None or self.hdr10 is not None:
            return None
        keep = ", ".join(codec.name for codec in CODECS.values() if codec.hdr10 is not None)
        return (
            f"{self.name} cannot carry the source's HDR10 mastering display and light level metadata: OUTPUT "
            f"keeps only its colour tags (encoder.codec {keep} would keep it)"
        )

    def problems(self, values: Mapping[str, Any]) -> list[str]:
        """What in the encoder settings this codec cannot take, in words (empty: all fine)."""
        found = []
        if self.crf_max is not None and values["crf"] > self.crf_max:
            found.append(
                f"encoder.crf must be at most {self.crf_max:g} for {self.name} (got {values['crf']:g})"
            )
        if values["pix_fmt"] not in self.pixel_formats:
            found.append(
                f"encoder.pix_fmt must be one of {', '.join(self.pixel_formats)} for {self.name} "
                f"(got {values['pix_fmt']})"
            )
        if values["tune"] is not None and not self.tunes:
            found.append(f"encoder.tune does not apply to {self.name}; remove it")
        for key, owner in PARAMS_KEYS.items():
            if values.get(key) and owner is not self:
                found.append(
                    f"encoder.{key} applies to codec {owner.name} only (codec is {self.name}); remove it"
                )
        return found


_EIGHT_TEN_TWELVE = tuple(PIXEL_FORMATS)
_EIGHT_TEN = tuple(f for f in PIXEL_FORMATS if not f.endswith("12le"))
CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        # x265 logs on its own: log-level keeps its info lines out of the error tail.
        Codec("x265", "libx265", "HEVC", 51, SpeedPreset("x265_preset", X26X_PRESETS, "medium"), X26X_TUNES, _EIGHT_TEN_TWELVE,
              ("matroska", "mp4"), mp4_tag="hvc1", params_option="x265-params", fixed_params=("log-level=warning",),
              hdr10=Hdr10Syntax("master-display", "max-cll"),
              params_key=ParamsKey("x265_params", "aq-mode=3:no-sao=1", "x265 --fullhelp")),
        Codec("x264", "libx264", "H.264", 51, SpeedPreset("x264_preset", X26X_PRESETS, "medium"), X26X_TUNES, _EIGHT_TEN, ("matroska", "mp4"),
              params_option="x264-params", hdr10=Hdr10Syntax("mastering-display", "cll"),
              former_preset_key="x265_preset"),
        Codec("svtav1", "libsvtav1", "AV1", CRF_MAX, SpeedPreset("svtav1_preset", slowest_last=13), (), ("yuv420p", "yuv420p10le"),
              ("matroska", "mp4"), params_option="svtav1-params",
              hdr10=Hdr10Syntax("mastering-display", "content-light", decimal=True)),
        Codec("ffv1", "ffv1", "lossless", None, None, (), _EIGHT_TEN_TWELVE, ("matroska",),
              fixed_options=(("level", "3"), ("slicecrc", "1"))),
    )
}  # fmt: skip
DEFAULT_CODEC = "x265"
# Encoder keys holding a codec's own parameters -> that codec.
PARAMS_KEYS = {codec.params_key.name: codec for codec in CODECS.values() if codec.params_key}
