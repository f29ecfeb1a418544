"""``streamdiffvsr encode`` end to end: real VapourSynth, ffmpeg/x265 and the filter on the tiny checkpoint.

Clips are 32x24 (128x96 out), 8 frames at 24 fps; the engine runs 1-2 steps with DIS flow to stay cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamdiffvsr.cli.main import main
from tests.processes import own_processes

FPS = 24
FRAMES = 8
CLI = Path(sys.executable).parent / "streamdiffvsr"
CHEAP = ["--set", "flow=dis", "--set", "steps=1"]
PASSTHROUGH_VPY = """\
import vapoursynth as vs
core = vs.core
clip = core.resize.Bicubic(core.bs.VideoSource(source=src), format=vs.YUV420P10)
"""

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libx265")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_clip(path: Path, audio_codec: str = "aac") -> Path:
    """A 32x24 testsrc2 clip with a sine audio track, an SRT subtitle, a chapter and a title."""
    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:00,200\nhello\n\n", encoding="utf-8")
    meta = path.with_suffix(".ffmeta")
    meta.write_text(";FFMETADATA1\ntitle=Sample\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=300\ntitle=One\n")
    seconds = f"{FRAMES / FPS:.6f}"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=32x24:rate={FPS}:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-i", str(srt), "-i", str(meta),
        "-map", "0", "-map", "1", "-map", "2", "-map_metadata", "3", "-map_chapters", "3",
        "-metadata:s:v:0", "language=jpn",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", audio_codec, "-c:s", "srt", str(path),
    )  # fmt: skip
    return path


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-show_chapters",
         "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def streams(info: dict, kind: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def x265_options(path: Path) -> str:
    """The settings x265 wrote into the stream (its 'options:' SEI), read from the Annex B bitstream."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy", "-bsf:v", "hevc_mp4toannexb",
         "-f", "hevc", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    start = raw.index(b"options: ") + len(b"options: ")
    return raw[start : raw.index(b"\x00", start)].decode("ascii", errors="replace")


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of this test run's live processes that mention ``marker`` (our children would name the
    test's tmp dir)."""
    return [cmdline for cmdline in own_processes().values() if marker in cmdline]


def assert_clean(folder: Path, keep: set[str]) -> None:
    """Only ``keep`` is left in ``folder`` (no output, no partial file) and no child process survives."""
    assert {p.name for p in folder.iterdir()} == keep
    deadline = time.monotonic() + 5
    while processes_mentioning(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(folder)) == []


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "sample.mkv")


@pytest.mark.slow
def test_encode_keeps_streams_and_settings_reach_filter_and_x265(
    clip: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.mkv"
    args = ["encode", str(clip), str(output), "--model", str(tiny_checkpoint), "--preset", "preview"]
    args += ["--set", "steps=2", "--set", "seed=5", "--set", "crf=31", "--set", "x265_params=aq-mode=3"]
    result = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {output}"
    assert f"model: {tiny_checkpoint}" in result.stderr
    assert (
        "filter: steps=2, flow='dis', flow_scale=1.0, seed=5, noise='fixed', color_fix='luma', scene_detect=True"
        in result.stderr
    )

    source, out = probe(clip), probe(output)
    (video,) = streams(out, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("hevc", 128, 96)
    assert int(video["nb_read_frames"]) == FRAMES
    assert video["r_frame_rate"] == f"{FPS}/1"
    assert (video["pix_fmt"], video.get("color_space")) == ("yuv420p", "bt709")  # preview is 8-bit
    assert video["tags"]["language"] == "jpn" and "libx264" not in video["tags"].get("ENCODER", "")
    assert len(streams(out, "audio")) == 1 and len(streams(out, "subtitle")) == 1
    assert [c["tags"]["title"] for c in out["chapters"]] == ["One"]
    assert out["format"]["tags"]["title"] == "Sample"
    assert abs(float(out["format"]["duration"]) - float(source["format"]["duration"])) <= 1 / FPS

    options = x265_options(output).split()
    assert "crf=31.0" in options and "aq-mode=3" in options
    assert "rc-lookahead=5" in options  # preset ultrafast (from the preview preset)
    assert {p.name for p in tmp_path.iterdir()} == {"out.mkv"}


@pytest.mark.slow
def test_odd_path_mp4_range_and_overwrite(
    clip: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "dir with space #1 ü"
    folder.mkdir()
    source = folder / "a \"q\" 'x' #1 ü\n\");open('pwned','w')#.mkv"
    shutil.copy(clip, source)
    output = folder / "out 'ü'.mp4"
    output.write_text("old")
    args = ["encode", str(source), str(output), "--model", str(tiny_checkpoint), "--start", "2", "--end", "5"]
    assert main([*args, *CHEAP, "--overwrite", "--quiet"]) == 0, capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and not (folder / "pwned").exists()
    out = probe(output)
    (video,) = streams(out, "video")
    assert (video["width"], video["height"], int(video["nb_read_frames"])) == (128, 96, 4)
    assert video["codec_tag_string"] == "hvc1" and video["pix_fmt"] == "yuv420p10le"
    assert len(streams(out, "audio")) == 1
    assert [s["codec_name"] for s in streams(out, "subtitle")] == ["mov_text"]
    assert abs(float(out["format"]["duration"]) - 4 / FPS) <= 1.5 / FPS
    assert_clean(folder, {source.name, output.name})


@pytest.mark.slow
def test_script_failure_mid_stream(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "raise.vpy"
    script.write_text(
        PASSTHROUGH_VPY
        + "def fail(n, f):\n"
        + "    if n == 5:\n        raise RuntimeError('boom at frame 5')\n    return f\n"
        + "core.std.ModifyFrame(clip, clip, fail).set_output()\n"
    )
    output = tmp_path / "out.mkv"
    assert main(["encode", str(clip), str(output), "--vpy", str(script), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("streamdiffvsr: error: script failed (") and "boom at frame 5" in err[-1]
    assert err[-1].endswith("; no output was written")
    assert any("def fail" in line or "line " in line for line in err if line.startswith("  script| "))
    assert_clean(tmp_path, {"raise.vpy"})


@pytest.mark.slow
def test_script_failing_before_its_first_frame_is_blamed_not_ffmpeg(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ffmpeg fails too (an empty stream), but the cause to show is the script's own error.
    script = tmp_path / "broken.vpy"
    script.write_text(PASSTHROUGH_VPY + "raise vs.Error('stream_diffvsr: no RAFT weights; use flow=dis')\n")
    output = tmp_path / "out.mkv"
    assert main(["encode", str(clip), str(output), "--vpy", str(script), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        "streamdiffvsr: error: script failed (Error: stream_diffvsr: no RAFT weights; use flow=dis); "
        "no output was written"
    )
    assert any("broken.vpy" in line and line.startswith("  script| ") for line in err)
    assert_clean(tmp_path, {"broken.vpy"})


@pytest.mark.slow
def test_ffmpeg_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_clip(tmp_path / "clip.mkv")
    script = tmp_path / "tiny.vpy"  # frames x265 refuses to encode (PCM into mp4 is refused before this now)
    script.write_text(PASSTHROUGH_VPY + "clip = core.resize.Bicubic(clip, 8, 8)\nclip.set_output()\n")
    output = tmp_path / "out.mp4"
    assert main(["encode", str(source), str(output), "--vpy", str(script), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("streamdiffvsr: error: ffmpeg failed (exit status")
    assert any("too small (8x8)" in line and line.startswith("  ffmpeg| ") for line in err)
    assert_clean(tmp_path, {"clip.mkv", "clip.srt", "clip.ffmeta", "tiny.vpy"})


@pytest.mark.slow
def test_sigint_stops_both_children_and_removes_partial(clip: Path, tmp_path: Path) -> None:
    script = tmp_path / "slow.vpy"
    script.write_text(
        "import time\nimport vapoursynth as vs\ncore = vs.core\n"
        "clip = core.std.BlankClip(width=64, height=48, format=vs.YUV420P10, length=100000, fpsnum=24)\n"
        "def slow(n, f):\n    time.sleep(0.05)\n    return f\n"
        "core.std.ModifyFrame(clip, clip, slow).set_output()\n"
    )
    output = tmp_path / "out.mkv"
    cli = subprocess.Popen(
        [str(CLI), "encode", str(clip), str(output), "--vpy", str(script)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir()):
            assert cli.poll() is None and time.monotonic() < deadline, cli.communicate()
            time.sleep(0.2)
        time.sleep(1.0)  # frames are flowing through both children now
        assert len(processes_mentioning(str(tmp_path))) >= 3  # the CLI, its render worker and ffmpeg
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == 130, err
    assert err.strip().splitlines()[-1] == "streamdiffvsr: interrupted"
    assert_clean(tmp_path, {"slow.vpy"})


def fake_ffmpeg_without_x265(folder: Path) -> Path:
    path = folder / "ffmpeg"
    path.write_text("#!/bin/sh\necho ' V....D libx264   H.264'\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing input", "INPUT {folder}/missing.mkv does not exist"),
        ("not a video", "cannot read {folder}/garbage.mkv as a video"),
        ("output exists", "OUTPUT {folder}/exists.mkv exists; pass --overwrite to replace it"),
        ("unknown preset", "unknown preset 'ultra'"),
        ("bad set", "engine.steps must be an integer from 1 to 50 (got 0)"),
        ("bad extension", "OUTPUT must end in .mkv or .mp4"),
        ("missing ffmpeg", "ffmpeg not found"),
        ("no x265", "has no libx265 encoder"),
        ("bad range", "--end must be >= --start"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(
    case: str, expected: str, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    source, output, extra = clip, tmp_path / "out.mkv", []
    if case == "missing input":
        source = tmp_path / "missing.mkv"
    elif case == "not a video":
        source = tmp_path / "garbage.mkv"
        source.write_bytes(b"not a video at all" * 10)
    elif case == "output exists":
        output = tmp_path / "exists.mkv"
        output.write_text("keep me")
    elif case == "unknown preset":
        extra = ["--preset", "ultra"]
    elif case == "bad set":
        extra = ["--set", "steps=0"]
    elif case == "bad extension":
        output = tmp_path / "out.avi"
    elif case == "missing ffmpeg":
        monkeypatch.setenv("STREAMDIFFVSR_FFMPEG", str(tmp_path / "nope"))
    elif case == "no x265":
        monkeypatch.setenv("STREAMDIFFVSR_FFMPEG", str(fake_ffmpeg_without_x265(tmp_path)))
    elif case == "bad range":
        extra = ["--start", "5", "--end", "2"]
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert main(["encode", str(source), str(output), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("streamdiffvsr: error: ") and captured.err.count("\n") == 1
    assert expected.format(folder=tmp_path) in captured.err
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_input(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "locked.mkv"
    shutil.copy(clip, source)
    source.chmod(0)
    assert main(["encode", str(source), str(tmp_path / "out.mkv")]) == 2
    assert "cannot read INPUT" in capsys.readouterr().err
