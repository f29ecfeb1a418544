"""``streamdiffvsr encode`` keeps what the source says about its streams (issue 19): audio in step with a
trimmed video, the sample aspect ratio; and it says what it cannot keep (interlacing, cover art, tiny frames).
Real render workers and ffmpeg; a passthrough script stands in for the model where the model does not matter."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .test_cli_encode import CHEAP, ffmpeg
from .test_cli_reliability import encode

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libx265")


def stream_entries(path: Path, entries: str) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", f"stream={entries}", "-of", "json", str(path)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)["streams"]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_range_starting_after_a_keyframe_keeps_audio_in_step(
    tmp_path: Path, passthrough: Path, suffix: str
) -> None:
    source = tmp_path / "gop.mkv"  # one keyframe (x264's GOP is 250): the seek to frame 25 lands on frame 0
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25:duration=2", "-f", "lavfi", "-i", "sine=duration=2",
        "-map", "0", "-map", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(source),
    )  # fmt: skip
    output = tmp_path / f"out{suffix}"
    assert encode(source, output, "--vpy", passthrough, "--start", 25, "--end", 34) == 0
    starts = {
        s["codec_type"]: float(s["start_time"]) for s in stream_entries(output, "codec_type,start_time")
    }
    assert abs(starts["video"]) < 0.001, starts
    assert 0 <= starts["audio"] < 0.03, starts  # within one AAC frame of the first picture
    packets = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "packet=pts_time", "-of", "csv=p=0",
         str(output)],
        capture_output=True, check=True, text=True,
    ).stdout.split()  # fmt: skip
    assert float(packets[0]) > -0.03, packets[:3]  # no second of sound that an mp4 edit list hides


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_sample_aspect_ratio_is_kept(tiny_checkpoint: Path, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "anamorphic.mkv"  # 64x48 pixels shown 16:9
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=0.125", "-vf", "setsar=4/3",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(source),
    )  # fmt: skip
    output = tmp_path / f"out{suffix}"
    assert encode(source, output, "--model", tiny_checkpoint, *CHEAP) == 0
    (video,) = stream_entries(output, "width,height,sample_aspect_ratio,display_aspect_ratio")
    assert video == {
        "width": 256,
        "height": 192,
        "sample_aspect_ratio": "4:3",
        "display_aspect_ratio": "16:9",
    }


def test_a_frame_too_small_for_the_model_is_refused_before_anything_loads(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "small.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=18x10:rate=24:duration=0.125", "-c:v", "ffv1", str(source))
    assert encode(source, tmp_path / "out.mkv", "--model", tiny_checkpoint, *CHEAP) == 2
    assert capsys.readouterr().err == (
        "streamdiffvsr: error: INPUT is 18x10; the model needs each side to be at least 16 pixels: upscale or "
        "pad it first (e.g. in your own script, passed with --vpy)\n"
    )
    assert {p.name for p in tmp_path.iterdir()} == {"small.mkv"}


@pytest.mark.slow
def test_interlacing_and_cover_art_are_announced(tmp_path: Path, passthrough: Path, capsys) -> None:
    cover = tmp_path / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x32:rate=1", "-frames:v", "1", str(cover))
    source = tmp_path / "tv.mp4"  # interlaced (top field first), with cover art after the video
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=0.25", "-i", str(cover), "-map", "0", "-map", "1",
        "-c:v:0", "libx264", "-flags:v:0", "+ildct+ilme", "-field_order:v:0", "tt", "-c:v:1", "png",
        "-disposition:v:1", "attached_pic", str(source),
    )  # fmt: skip
    assert encode(source, tmp_path / "out.mkv", "--vpy", passthrough) == 0
    err = capsys.readouterr().err
    assert (
        "streamdiffvsr: INPUT is interlaced (tt); your script (--vpy) gets its fields woven into frames: deinterlace "
        "there, e.g. with streamdiffvsr.vsfilter.prepare_source(clip, deinterlace='bwdif')\n"
    ) in err
    assert "streamdiffvsr: INPUT's cover art (1 attached picture(s)) is not carried into OUTPUT\n" in err


def first_frame(path: Path, width: int, height: int) -> np.ndarray:
    """Frame 0 as a player shows it (ffmpeg turns it by the display matrix), grey, as float."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf", f"scale={width}:{height}",
         "-pix_fmt", "gray", "-f", "rawvideo", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(height, width).astype(float)


@pytest.mark.slow
def test_a_display_rotation_comes_out_upright_without_a_notice(
    tmp_path: Path, passthrough: Path, capsys
) -> None:
    plain = tmp_path / "plain.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=0.125", "-c:v", "libx264", str(plain))
    turned = tmp_path / "phone.mp4"  # a display matrix, as phones write
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(turned))
    output = tmp_path / "out.mkv"
    assert encode(turned, output, "--vpy", passthrough) == 0
    assert "turn" not in capsys.readouterr().err  # the source reader turned the frames: nothing to say
    (video,) = stream_entries(output, "width,height")
    assert video == {"width": 48, "height": 64}  # shown as the phone showed it, portrait
    shown, encoded = first_frame(turned, 48, 64), first_frame(output, 48, 64)
    assert np.abs(encoded - shown).mean() < 8 < np.abs(encoded[::-1, ::-1] - shown).mean()
