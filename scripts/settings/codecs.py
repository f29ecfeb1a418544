"""The codec registry: everything that differs between the video codecs ``encoder.codec`` offers.

Adding a codec is one ``Codec`` entry in ``CODECS``: its ffmpeg encoder, the encoder keys it reads (speed preset,
tune, extra parameters), its quality range, pixel formats and containers. The schema, the ffmpeg command, the
tool check and ``info`` read this module and nothing else about codecs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
SVTAV1_PRESET_MAX = 13


@dataclass(frozen=True)
class Codec:
    """One video codec. ``preset_key``/``params_key`` name the encoder keys it reads (None: it has none);
    ``crf_max`` None means lossless (no rate control)."""

    name: str
    encoder: str  # the ffmpeg encoder
    description: str
    crf_max: float | None
    preset_key: str | None
    tunes: tuple[str, ...]
    params_key: str | None
    params_option: str | None  # the ffmpeg option that carries ``params_key`` (e.g. -x265-params)
    pixel_formats: tuple[str, ...]
    containers: tuple[str, ...]  # ffmpeg muxers it can be written into
    mp4_tag: str | None = None  # the sample entry players expect in mp4 (hvc1 for HEVC)
    fixed_options: tuple[tuple[str, str], ...] = ()

    def options(self, encoder: Mapping[str, Any]) -> dict[str, str]:
        """The ffmpeg output options of this codec for the encoder settings (codec, rate, speed, tune)."""
        options = {"c:v": self.encoder, "pix_fmt": str(encoder["pix_fmt"]), **dict(self.fixed_options)}
        if self.crf_max is not None:
            options["crf"] = f"{encoder['crf']:g}"
        if self.preset_key is not None and encoder.get(self.preset_key) is not None:
            options["preset"] = str(encoder[self.preset_key])
        if self.tunes and encoder.get("tune"):
            options["tune"] = str(encoder["tune"])
        return options

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
        for key in PARAMS_KEYS:
            if values.get(key) and key != self.params_key:
                found.append(
                    f"encoder.{key} applies to codec {PARAMS_KEYS[key]} only (codec is {self.name}); remove it"
                )
        return found


_EIGHT_TEN_TWELVE = tuple(PIXEL_FORMATS)
_EIGHT_TEN = tuple(f for f in PIXEL_FORMATS if not f.endswith("12le"))
CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        Codec("x265", "libx265", "HEVC", 51, "x265_preset", X26X_TUNES, "x265_params", "x265-params",
              _EIGHT_TEN_TWELVE, ("matroska", "mp4"), mp4_tag="hvc1"),
        Codec("x264", "libx264", "H.264", 51, "x264_preset", X26X_TUNES, None, None, _EIGHT_TEN,
              ("matroska", "mp4")),
        Codec("svtav1", "libsvtav1", "AV1", CRF_MAX, "svtav1_preset", (), None, None, ("yuv420p", "yuv420p10le"),
              ("matroska", "mp4")),
        Codec("ffv1", "ffv1", "lossless", None, None, (), None, None, _EIGHT_TEN_TWELVE, ("matroska",),
              fixed_options=(("level", "3"), ("slicecrc", "1"))),
    )
}  # fmt: skip
DEFAULT_CODEC = "x265"
# Encoder keys holding extra parameters -> the codec that takes them.
PARAMS_KEYS = {codec.params_key: codec.name for codec in CODECS.values() if codec.params_key}
