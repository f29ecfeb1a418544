"""prepare_source, detect_borders, source_geometry and size_output on the real VapourSynth core and plugins, over
sources made with ffmpeg as real ones are and read with BestSource as the generated script reads them: what a
viewer would see (no combing, 4 of 5 frames at 24000/1001, the bars gone, exact sizes) and the one-line
refusals."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

from streamdiffvsr.geometry import Crop
from streamdiffvsr.vsfilter import detect_borders, prepare_source, size_output, source_geometry

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
core = vs.core

BOX_ROWS = slice(44, 100)  # the white box's rows (y 40..103), away from its top and bottom edges
# A white 32x64 box moving sideways over black; overlay in RGB so every position is exact in the luma.
BOX = "color=c=black:s=192x144:r={rate}:d={duration}[bg];color=c=white:s=32x64:r={rate}[box];" \
      "[bg][box]overlay=x='{x}':y=40:shortest=1:format=rgb,format=yuv420p"  # fmt: skip


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def x264(path: Path, graph: str, *options: str) -> Path:
    ffmpeg("-f", "lavfi", "-i", graph, "-c:v", "libx264", "-preset", "ultrafast", *options, str(path))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prepare")


def source(path: Path) -> vs.VideoNode:
    """The file as the generated script reads it."""
    return core.bs.VideoSource(source=str(path), cachepath=str(path.parent / "index"))


@pytest.fixture(scope="module")
def woven(media: Path) -> vs.VideoNode:
    """12 interlaced frames, top field first and tagged tt: the box moves 5 px between the two fields of a
    frame (a 50 fields/s capture woven into 25 frames/s), lossless."""
    graph = BOX.format(rate=50, duration=0.48, x="10+t*250") + ",tinterlace=interleave_top,setfield=tff"
    return source(x264(media / "woven.mkv", graph, "-qp", "0", "-flags", "+ildct+ilme", "-top", "1",
                       "-field_order", "tt"))  # fmt: skip


@pytest.fixture(scope="module")
def telecined(media: Path) -> vs.VideoNode:
    """40 film frames at 24000/1001 (the box 3 px further each frame) telecined 2:3 to 50 frames at 30000/1001."""
    graph = BOX.format(rate="24000/1001", duration=40 * 1001 / 24000, x="8+n*3")
    return source(x264(media / "telecined.mkv", graph + ",telecine=first_field=top:pattern=23", "-qp", "0"))


def letterboxed(media: Path, name: str, extra: str = "") -> vs.VideoNode:
    """48 frames of testsrc2's picture (192x100) in a 192x144 frame: 22 black rows above and below."""
    return source(x264(media / name, f"testsrc2=s=192x100:r=24:d=2,pad=192:144:0:22,format=yuv420p{extra}"))


def comb(frame: vs.VideoFrame) -> int:
    """How far the box's left edge jumps from one row to the next (0: straight; woven fields: the motion)."""
    edge = (np.asarray(frame[0])[BOX_ROWS] > 128).argmax(axis=1)
    return int(np.abs(np.diff(edge)).max())


def box_position(frame: vs.VideoFrame) -> int:
    return int(np.median((np.asarray(frame[0])[BOX_ROWS] > 128).argmax(axis=1)))


def frames(clip: vs.VideoNode) -> list[vs.VideoFrame]:
    return [clip.get_frame(n) for n in range(clip.num_frames)]


def test_auto_deinterlaces_a_woven_tt_source(woven: vs.VideoNode) -> None:
    assert woven.get_frame(0).props["_FieldBased"] == 2  # BestSource reads the tt tag
    assert all(comb(f) >= 4 for f in frames(prepare_source(woven, deinterlace="off")))
    prepared = prepare_source(woven)  # auto
    assert (prepared.num_frames, prepared.fps) == (12, 25)
    assert [comb(f) for f in frames(prepared)] == [0] * 12
    assert prepared.get_frame(0).props["_FieldBased"] == 0
    assert source_geometry(woven).describe() == "192x144 tt -> bwdif -> model 768x576"


def test_bwdif_double_makes_a_frame_of_each_field_in_time_order(woven: vs.VideoNode) -> None:
    double = prepare_source(woven, deinterlace="bwdif-double")
    assert (double.num_frames, double.fps) == (24, 50)
    positions = [box_position(f) for f in frames(double)]
    assert all(comb(f) == 0 for f in frames(double))
    assert all(b > a for a, b in zip(positions, positions[1:], strict=False)), positions
    # the fields taken in the wrong order: the box steps back every other frame
    wrong = [
        box_position(f) for f in frames(prepare_source(woven, deinterlace="bwdif-double", field_order="bb"))
    ]
    assert any(b < a for a, b in zip(wrong, wrong[1:], strict=False))


def test_ivtc_gives_the_film_frames_back(telecined: vs.VideoNode) -> None:
    assert (telecined.num_frames, telecined.fps) == (50, Fraction(30000, 1001))
    assert (
        sum(comb(f) > 0 for f in frames(telecined)) == 20
    )  # 2 of each 5 telecined frames mix two film frames
    film = prepare_source(telecined, deinterlace="ivtc")
    assert (film.num_frames, film.fps) == (40, Fraction(24000, 1001))
    assert [comb(f) for f in frames(film)] == [0] * 40
    # every film frame once, in order: none dropped, no duplicate kept
    first = box_position(telecined.get_frame(0))
    assert [box_position(f) for f in frames(film)] == [first + 3 * n for n in range(40)]
    geometry = source_geometry(telecined, deinterlace="ivtc")
    assert geometry.describe() == "192x144 -> ivtc -> model 768x576" and geometry.rate == Fraction(4, 5)
    assert len(geometry.notices) == 1 and "flagged progressive" in geometry.notices[0]


@pytest.fixture(scope="module")
def letterbox(media: Path) -> vs.VideoNode:
    return letterboxed(media, "letterbox.mkv")


def test_detect_borders_crops_letterbox_bars(letterbox: vs.VideoNode) -> None:
    clip = letterbox
    assert detect_borders(clip) == Crop(0, 22, 0, 22)
    prepared = prepare_source(clip, crop="auto")
    assert (prepared.width, prepared.height) == (192, 100)
    luma = np.asarray(prepared.get_frame(7)[0])
    assert luma[0].max() > 60 and luma[-1].max() > 60  # picture in the first and last rows: the bars are gone
    assert (
        source_geometry(clip, crop="auto").describe()
        == "192x144 -> crop 0,22,0,22 -> 192x100 -> model 768x400"
    )


def test_a_side_with_picture_on_any_sampled_frame_is_kept(media: Path) -> None:
    # frames 30-32 draw into the top bar: the top is kept, the bottom still cropped
    clip = letterboxed(
        media, "touching.mkv", ",drawbox=x=40:y=0:w=60:h=30:c=white:t=fill:enable='between(n,30,32)'"
    )
    assert detect_borders(clip) == Crop(0, 0, 0, 22)


def test_a_dark_saturated_picture_is_not_a_bar(media: Path) -> None:
    # deep blue: its luma is below the black limit, its chroma far from neutral
    graph = "color=c=0x0000A0:s=192x100:r=24:d=0.5,pad=192:144:0:22,format=yuv420p"
    assert detect_borders(source(x264(media / "blue.mkv", graph))) == Crop(0, 22, 0, 22)


def test_uneven_bars_are_cropped_to_even_values(media: Path) -> None:
    # 21 black rows above, 25 below, 13 columns left: each rounded down to even (a sliver of black, no picture lost)
    graph = "testsrc2=s=160x98:r=24:d=1,format=rgb24,pad=192:144:13:21,format=yuv420p"
    assert detect_borders(source(x264(media / "uneven.mkv", graph, "-qp", "0"))) == Crop(12, 20, 18, 24)


def test_no_bars_no_crop(media: Path) -> None:
    clip = source(x264(media / "full.mkv", "testsrc2=s=192x144:r=24:d=1,format=yuv420p"))
    assert detect_borders(clip) is None
    geometry = source_geometry(clip, crop="auto")
    assert geometry.crop is None and "no constant black border" in geometry.notices[0]
    assert prepare_source(clip, crop="auto").height == 144


def counted(clip: vs.VideoNode) -> tuple[vs.VideoNode, list[int]]:
    """``clip`` and the list of the frame numbers requested of it (each once: VapourSynth caches frames)."""
    requested: list[int] = []

    def count(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        requested.append(n)
        return f

    return core.std.ModifyFrame(clip, clip, count), requested


def test_detection_reads_a_bounded_sample_spread_over_the_whole_clip(letterbox: vs.VideoNode) -> None:
    clip, requested = counted(letterbox * 3000)  # 144000 frames, 100 minutes at 24 fps
    assert detect_borders(clip) == Crop(0, 22, 0, 22)
    assert len(requested) == 100 and len(set(requested)) == 100
    assert min(requested) < 1440 and max(requested) > clip.num_frames - 1440  # the first and the last 1%
    short, requested = counted(letterbox)
    assert detect_borders(short, samples=8) == Crop(0, 22, 0, 22) and len(requested) == 8
    again, second = counted(letterbox)
    detect_borders(again, samples=8)
    assert second == requested  # the same positions every time (every worker finds the same crop)


@pytest.fixture(scope="module")
def anamorphic(media: Path) -> vs.VideoNode:
    """NTSC DVD 16:9: 720x480 stored, sample aspect ratio 32:27."""
    return source(
        x264(media / "anamorphic.mkv", "testsrc2=s=720x480:r=24:d=0.125,setsar=32/27,format=yuv420p")
    )


def model_output(clip: vs.VideoNode) -> vs.VideoNode:
    """A stand-in for the model's 4x output (sizing reads only its size; the model itself is tested elsewhere)."""
    return core.resize.Point(clip, 4 * clip.width, 4 * clip.height)


def test_anamorphic_output_sizes(anamorphic: vs.VideoNode) -> None:
    geometry = source_geometry(anamorphic, size="1080p")
    assert geometry.describe() == "720x480 SAR 32:27 -> model 2880x1920 -> lanczos 1920x1080"
    out = size_output(model_output(prepare_source(anamorphic, geometry=geometry)), geometry=geometry)
    props = out.get_frame(0).props
    assert (out.width, out.height, props["_SARNum"], props["_SARDen"]) == (1920, 1080, 1, 1)
    up = model_output(anamorphic)
    for size, expected in (("1440p", (2560, 1440, 1, 1)), ("1920p", (3414, 1920, 1, 1)),
                           ("1920x1080", (1920, 1080, 1, 1)), ("2x", (1440, 960, 32, 27)),
                           ("4x", (2880, 1920, 32, 27))):  # fmt: skip
        out = size_output(up, size, sar=(32, 27))
        props = out.get_frame(0).props
        assert (out.width, out.height, props["_SARNum"], props["_SARDen"]) == expected, size
    with pytest.raises(
        vs.Error, match=r"^size_output: size 2880x1920 changes the display aspect ratio 16:9"
    ) as exc:
        size_output(up, "2880x1920", sar=(32, 27))
    assert "\n" not in str(exc.value) and "use 3414x1920 or 1920p" in str(exc.value)
    with pytest.raises(vs.Error, match=r"^source_geometry: size 2160p is 4.50x .* the model is 4x"):
        source_geometry(anamorphic, size="2160p")


def test_method_before_shrinks_the_source_so_the_model_makes_the_target(media: Path) -> None:
    clip = source(x264(media / "before.mkv", "testsrc2=s=192x144:r=24:d=0.25,format=yuv420p"))
    geometry = source_geometry(clip, size="2x", method="before")
    shrunk = prepare_source(clip, geometry=geometry)
    assert (shrunk.width, shrunk.height) == (96, 72) and geometry.model_output == (384, 288)
    up = model_output(shrunk)
    assert size_output(up, geometry=geometry) is up  # the model's output is the target: nothing to resize
    after = source_geometry(clip, size="2x", kernel="spline36")
    out = size_output(model_output(clip), size="2x", kernel="spline36")
    assert (out.width, out.height) == after.final == (384, 288)
    point = size_output(model_output(clip), size="2x", kernel="point")
    assert not np.array_equal(
        np.asarray(out.get_frame(3)[0]), np.asarray(point.get_frame(3)[0])
    )  # the kernel used
    assert "96x72" in after.before_alternative()


def test_nothing_to_do_returns_the_clip_itself(media: Path) -> None:
    clip = source(x264(media / "plain.mkv", "testsrc2=s=64x48:r=24:d=0.25,format=yuv420p"))
    assert prepare_source(clip) is clip  # progressive, no crop: not a single filter added
    up = model_output(clip)
    assert size_output(up) is up


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: prepare_source(c, crop="1,22,0,22"), r"^prepare_source: crop 1,22,0,22: left 1 does not fit .*4:2:0"),
        (lambda c: prepare_source(c, crop="96,0,96,0"), r"^prepare_source: crop 96,0,96,0 leaves nothing"),
        (lambda c: prepare_source(c, crop="0,0,0"), r"^prepare_source: crop must be none, auto or four"),
        (lambda c: prepare_source(c, deinterlace="yadif"), r"^prepare_source: deinterlace must be one of auto"),
        (lambda c: prepare_source(c, field_order="top"), r"^prepare_source: field_order must be one of"),
        (lambda c: source_geometry(c, kernel="sinc"), r"^source_geometry: kernel must be one of lanczos"),
        (lambda c: size_output(model_output(c), "5x"), r"^size_output: size 5x: a factor must be from 1x to 4x"),
        (lambda c: detect_borders(c, samples=0), r"^detect_borders: samples must be an integer >= 1"),
        (lambda c: prepare_source(None), r"^prepare_source: clip must be a vs.VideoNode"),
    ],
)  # fmt: skip
def test_refusals_are_one_line(letterbox: vs.VideoNode, call, match: str) -> None:
    with pytest.raises(vs.Error, match=match) as exc:
        call(letterbox)
    assert "\n" not in str(exc.value)
