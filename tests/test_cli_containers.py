"""What ``encode`` carries from INPUT into OUTPUT's container and what it refuses before rendering (issue 25):
colour tags and font attachments in split and one-segment encodes, streams the container cannot hold, a frame
size that changes midway. Real ffmpeg, the script evaluated by the real worker; the tiny checkpoint on 32x24."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from streamdiffvsr.options import nvidia_gpu_present
from tests.test_cli_encode import ffmpeg
from tests.test_cli_segments import CHEAP_MP4, LOSSLESS, SEGMENTED, SEGMENTS, encode, make_scenes

COLOUR = "color_range,color_space,color_transfer,color_primaries"
FONT_MIME = "application/x-truetype-font"


def streams(path: Path, entries: str) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", f"stream={entries}:stream_tags=filename,mimetype", "-of", "json",
         str(path)], capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)["streams"]


def with_font(source: Path, target: Path, audio: str = "copy") -> Path:
    """``source`` with a font attachment (any bytes do as the font) and its audio as ``audio``."""
    font = target.with_name("font.ttf")
    font.write_bytes(bytes(range(256)) * 8)
    ffmpeg("-i", str(source), "-map", "0", "-c", "copy", "-c:a", audio, "-attach", str(font),
           "-metadata:s:t", f"mimetype={FONT_MIME}", str(target))  # fmt: skip
    return target


@pytest.fixture(scope="module")
def styled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four scenes (they split into four segments) with a font attachment."""
    folder = tmp_path_factory.mktemp("styled")
    return with_font(make_scenes(folder / "scenes.mkv"), folder / "styled.mkv")


@pytest.mark.slow
def test_split_and_one_segment_keep_colour_tags_and_attachments(
    styled: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """ffv1 carries no colour tags in its own bitstream: the split encode's join must set them as the
    one-segment encode does; the font goes into both."""
    whole, split = tmp_path / "whole.mkv", tmp_path / "split.mkv"
    encode(str(styled), str(whole), "--model", str(tiny_checkpoint), *LOSSLESS)
    result = encode(str(styled), str(split), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED)
    assert result.stderr.count(" done in ") == SEGMENTS
    tags = [streams(path, COLOUR)[0] for path in (whole, split)]
    assert tags[1] == tags[0] and (tags[0]["color_range"], tags[0]["color_space"]) == ("tv", "bt709")
    for path in (whole, split):
        fonts = [s for s in streams(path, "codec_type") if s["codec_type"] == "attachment"]
        assert [s["tags"] for s in fonts] == [{"filename": "font.ttf", "mimetype": FONT_MIME}], path


@pytest.mark.slow
def test_attachments_that_mp4_cannot_hold_are_announced(styled: Path, tmp_path: Path) -> None:
    result = encode(str(styled), str(tmp_path / "out.mp4"), "--model", "tiny", *CHEAP_MP4, "--dry-run")
    assert (
        "INPUT's 1 attachment(s) (font.ttf) cannot go into .mp4 and are left out of OUTPUT; write an .mkv OUTPUT "
        "to keep them" in result.stderr
    )


@pytest.mark.slow
def test_pcm_audio_into_mp4_is_refused_before_anything_renders(styled: Path, tmp_path: Path) -> None:
    pcm = with_font(styled, tmp_path / "pcm.mkv", audio="pcm_s16le")
    began = time.monotonic()
    result = encode(str(pcm), str(tmp_path / "out.mp4"), "--model", "tiny", *CHEAP_MP4, check=False)
    assert time.monotonic() - began < 30  # no worker started (it takes longer than that on this machine)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"streamdiffvsr: error: INPUT's audio stream 1 (pcm_s16le) cannot be copied into .mp4; write an .mkv "
        f"OUTPUT or re-encode the audio first, e.g. `ffmpeg -i {pcm} -map 0 -c copy -c:a aac AAC.mkv`, and "
        "encode AAC.mkv"
    )
    assert "filter:" not in result.stderr  # the script was never evaluated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["font.ttf", "pcm.mkv"]


@pytest.mark.slow
def test_a_frame_size_change_midway_is_one_line_naming_the_frame(tmp_path: Path) -> None:
    parts = []
    for size in ("64x48", "96x72"):  # six frames each, joined as a transport stream allows
        parts.append(tmp_path / f"{size}.ts")
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration=0.25", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(parts[-1]))  # fmt: skip
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    source = tmp_path / "changing.mkv"
    ffmpeg("-i", str(joined), "-c", "copy", str(source))
    result = encode(str(source), str(tmp_path / "out.mkv"), "--model", "tiny", *LOSSLESS, "--dry-run",
                    check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "streamdiffvsr: error: INPUT changes its frame size at frame 6 (from 64x48 to 96x72); the encode needs "
        f"one size throughout: scale it first, e.g. `ffmpeg -i {source} -vf scale=64:48 "
    )
    assert "Traceback" not in result.stderr and "script|" not in result.stderr


def single_frame(path: Path, size: str) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c=gray:size={size}:rate=24", "-frames:v", "1", "-c:v", "ffv1", str(path)
    )
    return path


@pytest.mark.slow
@pytest.mark.skipif(
    nvidia_gpu_present(), reason="the memory rule is the CPU's; with a GPU the check stands aside"
)
def test_an_output_too_large_for_memory_is_refused_before_anything_loads(tmp_path: Path) -> None:
    source = single_frame(tmp_path / "huge.mkv", "12000x12000")  # 48000x48000 out: about 190 GiB by the rule
    began = time.monotonic()
    result = encode(str(source), str(tmp_path / "out.mkv"), "--model", "tiny", *LOSSLESS, check=False)
    assert time.monotonic() - began < 30
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "streamdiffvsr: error: OUTPUT frames are 48000x48000: a render worker on the CPU needs about 188.6 GiB, "
        "more than this machine's "
    )
    assert (
        "GiB of memory (measured with nano: 1150 MiB + 175 MiB per million output pixels up to 33 million, 82 MiB "
        "per million beyond); render on a GPU, or make INPUT at most about " in last
    )
    assert f"e.g. `ffmpeg -i {source} -vf scale=-2:" in last
    assert "model:" not in result.stderr and "filter:" not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    nvidia_gpu_present(), reason="the memory rule is the CPU's; with a GPU the check stands aside"
)
def test_a_large_output_is_announced_with_its_memory_before_anything_loads(tmp_path: Path) -> None:
    source = single_frame(tmp_path / "large.mkv", "1920x1080")  # 7680x4320 out: about 6.8 GiB
    result = encode(str(source), str(tmp_path / "out.mkv"), "--model", "tiny", *LOSSLESS, "--dry-run")
    lines = result.stderr.splitlines()
    notice = next(i for i, line in enumerate(lines) if "OUTPUT frames are 7680x4320" in line)
    assert lines[notice] == (
        "streamdiffvsr: OUTPUT frames are 7680x4320: a render worker on the CPU needs about 6.8 GiB; "
        f"this machine has {lines[notice].rpartition(' has ')[2]}"
    )
    assert notice < next(i for i, line in enumerate(lines) if line.startswith("streamdiffvsr: model:"))
