"""``streamdiffvsr preview`` with real VapourSynth and ffmpeg on a 32x24 clip with a scene cut (tiny checkpoint,
1 step, DIS flow), and the encode's time estimate.

The model panel is checked against the encode itself: the same settings encoded losslessly (ffv1), read back
with BestSource and shown through the same YUV -> RGB24 conversion the preview uses for its panels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamdiffvsr.cli.main import main
from streamdiffvsr.cli.preview.flicker import METADATA_KEY
from streamdiffvsr.cli.preview.moments import parse_moment, place
from streamdiffvsr.cli.preview.picture import Layout
from streamdiffvsr.cli.preview.script_run import rgb_array, to_rgb24
from streamdiffvsr.cli.segments.estimate import Estimate, even_split

FPS = 24
CUT = 12  # testsrc2 for frames 0..11, then smptebars
CHEAP = ["--set", "flow=dis", "--set", "steps=1", "--set", "codec=ffv1"]

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames of 32x24 at 24 fps: a scene cut at frame 12."""
    path = tmp_path_factory.mktemp("preview") / "clip.mkv"
    duration = f"{CUT / FPS:.6f}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=32x24:rate={FPS}:duration={duration}",
         "-f", "lavfi", "-i", f"smptebars=size=32x24:rate={FPS}:duration={duration}",
         "-filter_complex", "[0:v][1:v]concat=n=2:v=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def preview(clip: Path, tiny_checkpoint: Path) -> tuple[Path, str]:
    """The preview of frames 5 and 17 with noise fresh and fixed, and what it printed."""
    out = clip.parent / "look.png"
    argv = ["preview", str(clip), str(out), "--model", str(tiny_checkpoint), *CHEAP, "--at", "17,5",
            "--compare", "noise=fresh,fixed", "--stretch", "0.5"]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.mark.slow
def test_picture_has_the_promised_panels_and_size(preview: Path) -> None:
    picture = np.asarray(Image.open(preview).convert("RGB"))
    layout = Layout(width=128, height=96, columns=4, rows=2)  # source, bicubic, fresh, fixed; frames 5 and 17
    assert picture.shape[:2] == layout.size
    assert layout.zoom == 4 and layout.panel == (384, 512)
    for row in range(2):
        panels = [_panel(picture, layout, row, column) for column in range(4)]
        assert all(panel.std() > 5 for panel in panels[:2])  # the source and bicubic pictures
        assert all(panel.std() > 0 for panel in panels[2:])  # tiny's random weights: a dark, grainy picture
        assert not np.array_equal(panels[2], panels[3])  # the two noise modes differ


@pytest.mark.slow
def test_model_panel_is_the_frame_the_encode_writes(preview: Path, clip: Path, tiny_checkpoint: Path) -> None:
    import vapoursynth as vs

    picture = np.asarray(Image.open(preview).convert("RGB"))
    layout = Layout(width=128, height=96, columns=4, rows=2)
    encoded = clip.parent / "fresh.mkv"
    argv = [
        "encode",
        str(clip),
        str(encoded),
        "--model",
        str(tiny_checkpoint),
        *CHEAP,
        "--set",
        "noise=fresh",
    ]
    assert main([*argv, "--quiet"]) == 0
    frames = to_rgb24(vs.core.bs.VideoSource(source=str(encoded)))
    for row, frame in enumerate((5, 17)):
        expected = rgb_array(frames.get_frame(frame))
        shown = _panel(picture, layout, row, 2)[:: layout.zoom, :: layout.zoom]
        np.testing.assert_array_equal(shown, expected)


def test_flicker_plot_has_one_curve_per_setting(preview: Path) -> None:
    plot = preview.with_name("look-flicker.png")
    image = Image.open(plot)
    data = json.loads(image.text[METADATA_KEY])
    assert list(data["series"]) == ["bicubic 4x", "noise=fresh", "noise=fixed"]
    assert data["frames"] == list(range(6, 17))  # 0.5 s from frame 5: frames 5..16, a change at 6..16
    assert data["cuts"] == [CUT]
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C)):  # matplotlib's C0, C1, C2
        assert (pixels == colour).all(axis=1).sum() > 50


def test_output_folder_holds_only_the_picture_and_plot(preview: Path, clip: Path) -> None:
    names = {path.name for path in clip.parent.iterdir()}
    assert {"look.png", "look-flicker.png"} <= names
    assert not [name for name in names if name.startswith(".")]


@pytest.mark.parametrize(
    "case",
    ["missing input", "not a video", "unknown preset", "bad key", "output exists"],
)
def test_bad_inputs_get_the_encodes_messages(
    case: str, tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, extra = clip, []
    if case == "missing input":
        source = tmp_path / "nothing.mkv"
    elif case == "not a video":
        source = tmp_path / "notes.mkv"
        source.write_text("not a video\n")
    elif case == "unknown preset":
        extra = ["--preset", "nonesuch"]
    elif case == "bad key":
        extra = ["--set", "engine.steps=0"]
    picture, video = tmp_path / "out.png", tmp_path / "out.mkv"
    if case == "output exists":
        picture.write_bytes(b"old")
        video.write_bytes(b"old")
    before = sorted(tmp_path.iterdir())
    assert main(["preview", str(source), str(picture), *extra]) == 2
    preview_error = capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["encode", str(source), str(video), *extra]) == 2
    encode_error = capsys.readouterr().err.strip().splitlines()[-1]
    assert preview_error.startswith("streamdiffvsr: error: ")
    assert preview_error.replace(str(picture), str(video)) == encode_error
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "24"], "--at 24 is beyond the end of INPUT: it has 24 frames (0 to 23)"),
        (["--at", "soon"], "--at: 'soon' is not a frame number"),
        (["--compare", "noise"], "--compare 'noise': write KEY=VALUE,VALUE"),
        (["--compare", "noise=sparkly"], "noise"),
    ],
)
def test_preview_mistakes_are_one_line(
    args: list[str], message: str, tmp_path: Path, clip: Path, tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = ["preview", str(clip), str(tmp_path / "out.png"), "--model", str(tiny_checkpoint), *CHEAP, *args]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("streamdiffvsr: error: ") and message in lines[-1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_failure_in_the_script_writes_nothing(
    tmp_path: Path, clip: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "junk.safetensors"
    weights.write_bytes(b"not a state dict")
    argv = ["preview", str(clip), str(tmp_path / "out.png"), "--model", str(tiny_checkpoint), *CHEAP,
            "--set", "flow=raft_small", "--set", f"flow_weights={weights}"]  # fmt: skip
    assert main(argv) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        line.startswith("streamdiffvsr: error: ") and "SafetensorError" in line
    )  # the networks load at frame 0
    assert list(tmp_path.iterdir()) == [weights]


def test_estimate_schedules_longest_segments_first() -> None:
    estimate = Estimate((500, 1000, 1000), 1.0, workers=2, seconds_per_segment=10, seconds_per_worker_start=5)
    assert estimate.wall_seconds == 5 + 10 + 1000 + 10 + 500
    assert estimate.render_seconds == 2500 + 30
    block = estimate.describe(fps=25, device="cuda:0")
    assert "2500 (0:01:40 at 25 fps)" in block and "3 segments on 2 workers" in block and "0:25:25" in block


def test_moments_parse_and_land_a_warmup_after_a_cut() -> None:
    assert [parse_moment(text, Fraction(24)) for text in ("120", "5.5s", "1:05", "0:01:05.5")] == [
        120,
        132,
        1560,
        1572,
    ]
    cuts = (0, 90, 95, 200)

    def starts(first: int, last: int) -> list[int]:
        return [cut for cut in cuts if first <= cut <= last]

    # 95 + 24: the chain from 90 ends at 95, too soon for 24 frames of warm-up
    assert place(100, 1000, warmup=24, clear=4, chain_starts=starts) == 119
    assert place(500, 1000, warmup=24, clear=4, chain_starts=starts) == 500  # no cut near: the frame itself


def test_estimate_without_a_speed_is_the_plan_alone() -> None:
    block = Estimate((1200, 900), None, workers=1).describe()
    assert "not measured" in block and "2 segments on 1 worker" in block and "wall time" not in block


def test_even_split_follows_the_encodes_rule() -> None:
    assert even_split(1999, 1000) == (1999,)
    assert even_split(2501, 1000) == (1251, 1250)


def _panel(picture: np.ndarray, layout: Layout, row: int, column: int) -> np.ndarray:
    y, x = layout.panel_origin(row, column)
    height, width = layout.panel
    return picture[y : y + height, x : x + width]


def test_a_settings_notice_is_printed_once_whatever_the_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deprecated key given once is one notice, not one per compared column (nor another for the title)."""
    args = ["--set", "checkpoint_interval=5", "--compare", "noise=fresh,fixed,warped"]
    assert main(["preview", str(tmp_path / "nothing.mkv"), str(tmp_path / "out.png"), *args]) == 2
    assert capsys.readouterr().err.count("engine.checkpoint_interval is now engine.snapshot_interval") == 1
