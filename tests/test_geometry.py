"""The geometry rules (core/geometry.py): parsing of deinterlace, crop, size, kernel and method; exact sizes; the
one-line refusals; the plan's line. No VapourSynth, no torch."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import pytest

from streamdiffvsr.geometry import (
    DEINTERLACE,
    KERNELS,
    Crop,
    GeometryError,
    Size,
    check_crop,
    chroma_subsampling,
    frame_count,
    parse_crop,
    parse_size,
    plan_geometry,
    rate_change,
    resolve_deinterlace,
    target_size,
)

ANAMORPHIC = (720, 480, (32, 27))  # NTSC DVD 16:9


def one_line(exc: pytest.ExceptionInfo[GeometryError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_parse_crop() -> None:
    assert parse_crop("none") == "none" and parse_crop(" AUTO ") == "auto"
    assert parse_crop("0,140,0,140") == Crop(0, 140, 0, 140) and parse_crop("2, 4, 6, 8") == Crop(2, 4, 6, 8)
    assert str(Crop(0, 140, 0, 140)) == "0,140,0,140"
    for bad in ("0,140,0", "-2,0,0,0", "a,b,c,d", "", "1.5,0,0,0"):
        with pytest.raises(GeometryError, match="left,top,right,bottom") as exc:
            parse_crop(bad)
        one_line(exc)


def test_check_crop_refuses_odd_values_for_420_and_nothing_left() -> None:
    assert check_crop(Crop(0, 140, 0, 140), 1920, 1080, (1, 1)) == Crop(0, 140, 0, 140)
    with pytest.raises(GeometryError, match=r"left 3, bottom 1 do not fit .*4:2:0.* multiples of 2") as exc:
        check_crop(Crop(3, 2, 0, 1), 1920, 1080, (1, 1))
    one_line(exc)
    # 4:2:2 halves only the width: an odd top is fine, an odd left is not; 4:4:4 takes any value
    assert check_crop(Crop(0, 1, 0, 3), 1920, 1080, (1, 0))
    with pytest.raises(GeometryError, match="4:2:2"):
        check_crop(Crop(1, 0, 0, 0), 1920, 1080, (1, 0))
    assert check_crop(Crop(1, 1, 1, 1), 64, 48, (0, 0))
    with pytest.raises(GeometryError, match="leaves nothing of the 1920x1080 source.*crop less") as exc:
        check_crop(Crop(960, 0, 960, 0), 1920, 1080)
    one_line(exc)
    with pytest.raises(GeometryError, match="leaves 1920x8 .* at least 16"):
        check_crop(Crop(0, 536, 0, 536), 1920, 1080)


def test_chroma_subsampling_of_pixel_formats() -> None:
    assert chroma_subsampling("yuv420p10le") == (1, 1) and chroma_subsampling("yuvj420p") == (1, 1)
    assert chroma_subsampling("yuv422p") == (1, 0) and chroma_subsampling("yuv444p") == (0, 0)
    assert chroma_subsampling("rgb24") == (0, 0) and chroma_subsampling(None) == (0, 0)


def test_parse_size() -> None:
    assert parse_size("4x") == Size(factor=Fraction(4)) and parse_size("1.5x") == Size(factor=Fraction(3, 2))
    assert parse_size("2160p") == Size(height=2160) and parse_size("3840x2160") == Size(
        width=3840, height=2160
    )
    assert str(parse_size("1.5x")) == "1.5x" and str(parse_size("2160p")) == "2160p"
    for bad, match in (("5x", "from 1x to 4x"), ("0.5x", "from 1x to 4x"), ("4.5x", "the model is 4x"),
                       ("big", "a factor"), ("1081p", "even"), ("1921x1080", "even"), ("0x0", "even")):  # fmt: skip
        with pytest.raises(GeometryError, match=match) as exc:
            parse_size(bad)
        one_line(exc)


def test_target_sizes_of_a_square_pixel_source() -> None:
    assert target_size("4x", 1920, 800) == (7680, 3200, 1)
    assert target_size("2x", 1920, 800) == (3840, 1600, 1)
    assert target_size("1.5x", 1280, 720) == (1920, 1080, 1)
    assert target_size("2160p", 1920, 1080) == (3840, 2160, 1)
    assert target_size("1440p", 1280, 720) == (2560, 1440, 1)
    assert target_size("3840x1600", 1920, 800) == (3840, 1600, 1)
    with pytest.raises(
        GeometryError, match=r"2160p is 4.50x of the 640x480 model input.*at most 1920p"
    ) as exc:
        target_size("2160p", 640, 480)
    one_line(exc)


def test_target_sizes_of_anamorphic_720x480_sar_32_27() -> None:
    # 720x480 at 32:27 is displayed 853.33x480 (16:9): heights give square-pixel 16:9 frames
    assert target_size("1080p", *ANAMORPHIC) == (1920, 1080, 1)
    assert target_size("1440p", *ANAMORPHIC) == (2560, 1440, 1)
    assert target_size("1920p", *ANAMORPHIC) == (3414, 1920, 1)
    assert target_size("1920x1080", *ANAMORPHIC) == (1920, 1080, 1)
    # a factor scales the stored frame and keeps its sample aspect ratio
    assert target_size("2x", *ANAMORPHIC) == (1440, 960, Fraction(32, 27))
    assert target_size("4x", *ANAMORPHIC) == (2880, 1920, Fraction(32, 27))
    with pytest.raises(GeometryError, match=r"2160p is 4.50x .* the model is 4x"):
        target_size("2160p", *ANAMORPHIC)
    # the storage size is 3:2, the display 16:9: 2880x1920 would stretch it
    with pytest.raises(
        GeometryError, match=r"changes the display aspect ratio 16:9 .* to 3:2; use 3414x1920"
    ) as exc:
        target_size("2880x1920", *ANAMORPHIC)
    one_line(exc)
    with pytest.raises(GeometryError, match="aspect ratio"):
        target_size("1920x1200", 1920, 1080)


def test_resolve_deinterlace() -> None:
    assert resolve_deinterlace("auto", "tt") == ("bwdif", None)
    assert resolve_deinterlace("auto", "bt") == ("bwdif", None)
    assert resolve_deinterlace("auto", "progressive") == ("off", None)
    assert (
        resolve_deinterlace("auto", None) == ("off", None)
        and resolve_deinterlace("auto", "unknown")[0] == "off"
    )
    assert resolve_deinterlace("bwdif-double", "bb") == ("bwdif-double", None)
    mode, notice = resolve_deinterlace("ivtc", "progressive")
    assert mode == "ivtc" and "progressive" in notice and "\n" not in notice
    assert resolve_deinterlace("ivtc", "tt") == ("ivtc", None)
    with pytest.raises(
        GeometryError, match="deinterlace must be one of auto, off, bwdif, bwdif-double, ivtc"
    ):
        resolve_deinterlace("yadif", "tt")
    assert DEINTERLACE[0] == "auto" and KERNELS[0] == "lanczos"


def test_rate_change_and_frame_count() -> None:
    assert rate_change("off") == 1 and rate_change("bwdif") == 1
    assert rate_change("bwdif-double") == 2 and rate_change("ivtc") == Fraction(4, 5)
    assert [frame_count(n, "ivtc") for n in (10, 11, 14, 15, 16)] == [8, 9, 12, 12, 13]  # VDecimate's counts
    assert frame_count(30, "bwdif-double") == 60 and frame_count(30, "off") == 30


def test_plan_geometry_line() -> None:
    g = plan_geometry(1920, 1080, None, "tt", "auto", "0,140,0,140", "2x")
    assert (
        g.describe()
        == "1920x1080 tt -> bwdif -> crop 0,140,0,140 -> 1920x800 -> model 7680x3200 -> lanczos 3840x1600"
    )
    assert g.prepared == (1920, 800) and g.final == (3840, 1600) and g.rate == 1
    assert "960x400" in g.before_alternative() and "25%" in g.before_alternative()
    plain = plan_geometry(640, 360)
    assert plain.describe() == "640x360 -> model 2560x1440" and plain.before_alternative() is None
    anamorphic = plan_geometry(*ANAMORPHIC, "progressive", size="1080p", kernel="spline36")
    assert anamorphic.describe() == "720x480 SAR 32:27 -> model 2880x1920 -> spline36 1920x1080"
    assert anamorphic.sar == 1 and anamorphic.before_alternative() is None  # 2.25x: not at most 2x


def test_plan_geometry_method_before() -> None:
    g = plan_geometry(1920, 1080, size="2160p", method="before")
    assert g.model_input == (960, 540) and g.model_output == (3840, 2160) and g.final == (3840, 2160)
    assert g.describe() == "1920x1080 -> lanczos 960x540 -> model 3840x2160"
    assert g.before_alternative() is None
    # 4x with method=before has nothing to shrink
    assert plan_geometry(640, 360, method="before").model_input == (640, 360)


def test_plan_geometry_refusals() -> None:
    for kwargs, match in (
        ({"kernel": "sinc"}, "kernel must be one of lanczos, spline16"),
        ({"method": "during"}, "method must be one of after, before"),
        ({"crop": "auto"}, "detected"),
        ({"crop": "1,0,0,0"}, "chroma subsampling"),
        ({"size": "8x"}, "from 1x to 4x"),
    ):
        with pytest.raises(GeometryError, match=match) as exc:
            plan_geometry(1920, 1080, **kwargs)
        one_line(exc)
    assert plan_geometry(1920, 1080, crop="0,0,0,0").crop is None


def test_no_vapoursynth_torch_or_ffmpeg() -> None:
    code = (
        "import sys, streamdiffvsr.geometry; "
        "print(sorted(m for m in ('torch', 'vapoursynth', 'numpy', 'subprocess') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
