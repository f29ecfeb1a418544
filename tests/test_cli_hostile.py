"""What a hostile user's sources, scripts, names and arguments do to the command (issue 34): an alpha plane, a
script whose output y4m cannot carry or that fails, an mp4 remuxed from mkv, a truncated file, a still picture
before the movie, a non-UTF-8 name on Ray workers, a folder of the work folder's name, empty option values,
impossible --at times, a damaged PNG for ``frames``, ``script --model``. Real render workers, ffmpeg and Ray; a
passthrough script stands in for the model where the model does not matter."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.main import main
from streamdiffvsr.cli.media.probe import frame_duration_range, probe
from streamdiffvsr.cli.preview.moments import parse_at

from .test_cli_encode import CHEAP, CLI, PASSTHROUGH_VPY, ffmpeg
from .test_cli_engine import write_frames
from .test_cli_reliability import encode
from .test_cli_segments import LOSSLESS, SEGMENTED, SEGMENTS

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libx265")

ALPHA_NOTICE = (
    "streamdiffvsr: INPUT has an alpha (transparency) plane (yuva444p12le); its colour planes are upscaled and "
    "the alpha is dropped\n"
)


def frame_count(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return int(out.strip())


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    source = tmp_path / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=0.25", "-c:v", "libx264", str(source))
    return source


@pytest.mark.slow
def test_an_alpha_source_encodes_its_colour_planes_with_one_notice(
    tmp_path: Path, passthrough: Path, capsys
) -> None:
    source = tmp_path / "p.mov"  # ProRes 4444 with its alpha plane, as editors export it
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=0.5", "-c:v", "prores_ks", "-profile:v", "4444",
        "-pix_fmt", "yuva444p10le", str(source),
    )  # fmt: skip
    output = tmp_path / "out.mkv"
    assert encode(source, output, "--vpy", passthrough, "--dry-run") == 0
    assert capsys.readouterr().err.count(ALPHA_NOTICE) == 1
    assert encode(source, output, "--vpy", passthrough) == 0
    err = capsys.readouterr().err
    assert err.count(ALPHA_NOTICE) == 1 and "trying again" not in err, err
    assert frame_count(output) == 12


@pytest.mark.slow
@pytest.mark.parametrize(
    ("last_line", "refusal"),
    [
        (
            "core.resize.Bicubic(clip, format=vs.RGB24, matrix_in_s='709').set_output()",
            "the output of out.vpy is RGB24; the encode takes YUV or GRAY: convert it at the end of the script, "
            "e.g. clip = core.resize.Bicubic(clip, format=vs.YUV420P10, matrix_s='709')",
        ),
        (
            "core.std.Splice([clip[:3], core.resize.Bicubic(clip[3:], 32, 24)], mismatch=True).set_output()",
            "the output of out.vpy changes size from frame to frame, which a video stream cannot carry; resize it "
            "to one size at the end of the script, e.g. clip = core.resize.Bicubic(clip, width=W, height=H, "
            "format=vs.YUV420P10)",
        ),
    ],
)
def test_a_script_output_y4m_cannot_carry_is_one_line_before_rendering(
    tmp_path: Path, clip: Path, capsys, last_line: str, refusal: str
) -> None:
    script = tmp_path / "out.vpy"
    script.write_text(PASSTHROUGH_VPY + last_line + "\n")
    assert encode(clip, tmp_path / "out.mkv", "--vpy", script) == 2
    assert capsys.readouterr().err == f"streamdiffvsr: error: {refusal}\n"
    assert {p.name for p in tmp_path.iterdir()} == {"clip.mkv", "out.vpy"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("clip = (\n", "SyntaxError: '(' was never closed (broken.vpy, line 4)"),
        ("def f():\n    raise RuntimeError('my own')\nf()\n", "RuntimeError: my own"),
    ],
)
def test_a_script_error_is_its_own_lines_alone_and_tried_once(
    tmp_path: Path, clip: Path, capsys, body: str, message: str
) -> None:
    script = tmp_path / "broken.vpy"
    script.write_text(PASSTHROUGH_VPY + body)
    assert encode(clip, tmp_path / "out.mkv", "--vpy", script) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"streamdiffvsr: error: script failed ({message}); no output was written"
    assert all(line.startswith("  script| ") for line in err[:-1]), err
    assert any("broken.vpy" in line for line in err[:-1]), err
    assert not any("worker.py" in line or "runpy" in line for line in err), err


@pytest.mark.parametrize("rate", [24, 30, 60])
def test_a_constant_rate_mkv_remuxed_to_mp4_is_constant(tmp_path: Path, rate: int) -> None:
    mkv, mp4 = tmp_path / "r.mkv", tmp_path / "r.mp4"  # what OBS's "remux recordings" does
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x48:rate={rate}:duration=1", "-c:v", "libx264", str(mkv))
    ffmpeg("-i", str(mkv), "-c", "copy", str(mp4))
    assert frame_duration_range(probe(mp4, "ffprobe")) is None


def test_a_variable_rate_mkv_remuxed_to_mp4_is_still_variable(tmp_path: Path) -> None:
    mkv, mp4 = tmp_path / "vfr.mkv", tmp_path / "vfr.mp4"  # 30 fps, then every other frame (15 fps)
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=1", "-vf", "select='lt(t,0.5)+not(mod(n,2))'",
        "-fps_mode", "vfr", "-c:v", "libx264", str(mkv),
    )  # fmt: skip
    ffmpeg("-i", str(mkv), "-c", "copy", str(mp4))
    shortest, longest = frame_duration_range(probe(mp4, "ffprobe"))
    assert (round(shortest * 1000), round(longest * 1000)) == (33, 67)


def test_a_truncated_file_is_named_so_with_the_frame_it_breaks_at(tmp_path: Path, capsys) -> None:
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"  # the index first: a download cut short
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=2", "-c:v", "libx264", "-movflags",
        "+faststart", str(whole),
    )  # fmt: skip
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 8 // 10])
    assert encode(cut, tmp_path / "out.mkv") == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "streamdiffvsr: error: INPUT is truncated (a partial file): it cannot be read from frame "
    )
    frames = int(err.split("from frame ")[1].split()[0])
    assert 0 < frames < 48 and err.count("\n") == 1, err
    readable = tmp_path / "READABLE.mkv"
    command = err.split("`")[1].replace("READABLE.mkv", str(readable))
    subprocess.run([*shlex.split(command), "-v", "quiet"], check=True)
    assert frame_count(readable) == frames
    assert frame_duration_range(probe(readable, "ffprobe")) is None


def still_then_movie(folder: Path) -> Path:
    """An mkv whose first video stream is one PNG picture (not marked as cover art), its second the movie."""
    still, movie, both = folder / "still.png", folder / "movie.mkv", folder / "both.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=red:size=32x32", "-frames:v", "1", str(still))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=0.5", "-c:v", "libx264", str(movie))
    ffmpeg("-i", str(still), "-i", str(movie), "-map", "0", "-map", "1", "-c", "copy", str(both))
    return both


def test_a_still_picture_stream_before_the_movie_is_skipped_by_the_probe(tmp_path: Path) -> None:
    info = probe(still_then_movie(tmp_path), "ffprobe")
    assert (info.track, info.width, info.frame_count) == (1, 64, 12)
    assert [s.describe() for s in info.other_videos] == ["video stream 0 (png, a still picture)"]


@pytest.mark.slow
def test_a_still_picture_stream_before_the_movie_is_not_encoded(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    output = tmp_path / "out.mkv"
    assert encode(still_then_movie(tmp_path), output, "--model", tiny_checkpoint, *CHEAP) == 0
    assert frame_count(output) == 12
    assert (
        "streamdiffvsr: INPUT has 2 video streams: video stream 1 is encoded (a --vpy script reads it with "
        "core.bs.VideoSource(src, track=int(track))); left out: video stream 0 (png, a still picture)\n"
    ) in capsys.readouterr().err


@pytest.mark.slow
def test_a_non_utf8_input_name_renders_on_two_workers(
    scenes: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    source = Path(os.fsdecode(bytes(tmp_path) + b"/sc\xe9nes.mkv"))  # Latin-1, as old cameras and shares name
    shutil.copy(scenes, source)
    output = tmp_path / "out.mkv"  # a command of its own: Ray records its command line, the name in it
    args = ["encode", str(source), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED]
    result = subprocess.run([CLI, *args, "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stderr.count(" done in ") == SEGMENTS, result.stderr
    assert frame_count(output) == 16
    assert {p.name for p in tmp_path.iterdir()} == {source.name, "out.mkv"}


def test_a_folder_named_like_the_work_folder_but_not_ours_is_refused_and_kept(
    tmp_path: Path, clip: Path, passthrough: Path, capsys
) -> None:
    folder = tmp_path / ".out.mkv.segments"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert encode(clip, tmp_path / "out.mkv", "--vpy", passthrough, "--restart") == 2
    assert capsys.readouterr().err == (
        f"streamdiffvsr: error: {folder} is not a work folder of streamdiffvsr (no manifest.json; it holds "
        "'notes.txt'): an encode would remove it at its end; move it away, or write another OUTPUT\n"
    )
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_a_work_folder_a_run_killed_before_its_first_save_left_is_taken_over(
    tmp_path: Path, clip: Path, passthrough: Path
) -> None:
    folder = tmp_path / ".out.mkv.segments"  # what a run killed before its manifest was written leaves
    folder.mkdir()
    for name in ("lock", "segment-00000.partial-4194304.nut", "segment-00001.partial-4194304-2.nut"):
        (folder / name).write_bytes(b"")
    assert encode(clip, tmp_path / "out.mkv", "--vpy", passthrough) == 0
    assert not folder.exists()


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["encode", "in.mkv", "out.mkv", "--ray", ""], "argument --ray: is empty; leave the option out for "
         "$RAY_ADDRESS or this machine"),
        (["encode", "in.mkv", "out.mkv", "--preset", ""], "argument --preset: is empty; leave the option out "
         "for the default preset"),
        (["preview", "in.mkv", "out.png", "--preset", " "], "argument --preset: is empty; leave the option out "
         "for the default preset"),
    ],
)  # fmt: skip
def test_an_empty_option_value_is_refused_not_taken_as_the_default(
    argv: list[str], error: str, capsys
) -> None:
    with pytest.raises(SystemExit) as stop:  # `--ray "$RAY_HEAD"` with the variable unset
        main(argv)
    assert stop.value.code == 2
    assert f"error: {error} (see" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("at", "error"),
    [
        ("1:99", "--at '1:99' is not a time: its minutes and seconds must be below 60"),
        ("1:00:60", "--at '1:00:60' is not a time: its minutes and seconds must be below 60"),
        ("1:60:00", "--at '1:60:00' is not a time: its minutes and seconds must be below 60"),
        ("2,1.5s", "--at 1.5s (frame 36) is beyond the end of INPUT: it has 12 frames (0 to 11)"),
        ("12", "--at 12 is beyond the end of INPUT: it has 12 frames (0 to 11)"),
    ],
)
def test_preview_at_refuses_impossible_times_and_names_a_moment_as_written(at: str, error: str) -> None:
    with pytest.raises(CliError) as refused:
        parse_at(at, Fraction(24), 12)
    assert str(refused.value) == error


@pytest.mark.parametrize(
    ("cut", "damage"), [(100, "its IDAT chunk is cut short"), (-5, "it ends before its IEND chunk")]
)
def test_frames_refuses_a_damaged_png_before_writing_any_frame(
    tiny_checkpoint: Path, tmp_path: Path, capsys, cut: int, damage: str
) -> None:
    write_frames(tmp_path / "in", 3)
    last = tmp_path / "in" / "frame10.png"  # the last frame, cut short as by a full disk
    last.write_bytes(last.read_bytes()[:cut])
    args = ["frames", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tiny_checkpoint), *CHEAP]
    assert main([*args, "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"streamdiffvsr: error: {last} is not a whole PNG ({damage}); replace or remove it, then rerun\n"
    )
    assert not (tmp_path / "out").exists()


def test_script_takes_model_as_encode_does(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert main(["script", "--model", str(tiny_checkpoint)]) == 0
    captured = capsys.readouterr()
    assert str(tiny_checkpoint) not in captured.out  # paths never go into the script
    assert captured.err.endswith(
        f"run: streamdiffvsr encode INPUT OUTPUT.mkv --vpy SCRIPT.vpy --model {tiny_checkpoint}\n"
    )
    assert main(["script", "--model", str(tmp_path / "none")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
