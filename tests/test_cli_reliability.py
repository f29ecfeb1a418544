"""``streamdiffvsr encode`` under hostile conditions (issue 12): full disks, read-only folders, dead runs,
awkward sources. Real render workers and ffmpeg; most cases use a passthrough script instead of the model."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from streamdiffvsr.cli.main import main
from streamdiffvsr.cli.media.probe import frame_duration_range
from streamdiffvsr.cli.media.probe import probe as read_source
from streamdiffvsr.cli.settings.codecs import CODECS

from .test_cli_encode import CHEAP, CLI, PASSTHROUGH_VPY, ffmpeg, make_clip, probe, streams

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libx265")

# Random 256x192 frames: x265 cannot squeeze them, so 8 frames overflow a 200 KiB folder.
NOISE_VPY = """\
import numpy as np
import vapoursynth as vs
core = vs.core
clip = core.std.BlankClip(width=256, height=192, format=vs.YUV420P10, length=8, fpsnum=24, keep=True)
rng = np.random.default_rng(0)
def noise(n, f):
    out = f.copy()
    for plane in range(3):
        np.asarray(out[plane])[:] = rng.integers(64, 940, np.asarray(out[plane]).shape, dtype=np.uint16)
    return out
core.std.ModifyFrame(clip, clip, noise).set_output()
"""


@contextlib.contextmanager
def tmpfs(folder: Path, options: str = "size=200k") -> Iterator[Path]:
    """A small tmpfs mounted on ``folder`` for the test's duration (skips where mounting is not allowed)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Write a filler file so that about ``leave`` bytes stay free in ``folder``."""
    stats = os.statvfs(folder)
    (folder / "filler").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "sample.mkv")


def encode(*args: object) -> int:
    """``streamdiffvsr encode ARGS --quiet`` in this process (its exit status)."""
    return main(["encode", *map(str, args), "--quiet"])


@pytest.mark.slow
def test_disk_full_keeps_the_old_output_and_fails(clip: Path, tmp_path: Path, capsys) -> None:
    script = tmp_path / "noise.vpy"
    script.write_text(NOISE_VPY)
    with tmpfs(tmp_path / "small") as folder:
        output = folder / "out.mkv"
        output.write_bytes(b"the good old encode")
        fill(folder, leave=140 << 10)
        assert encode(clip, output, "--vpy", script, "--preset", "preview", "--overwrite") == 1
        err = capsys.readouterr().err.splitlines()
        assert "No space left on device" in "\n".join(err)
        assert err[-1].startswith(
            "streamdiffvsr: error: ffmpeg failed (exit status 0, but the file is incomplete"
        )
        assert output.read_bytes() == b"the good old encode"
        assert {p.name for p in folder.iterdir()} == {"out.mkv", "filler"}


def test_full_output_folder_is_refused_up_front(clip: Path, tmp_path: Path, capsys) -> None:
    with tmpfs(tmp_path / "small") as folder:
        fill(folder, leave=16 << 10)
        assert encode(clip, folder / "out.mkv", "--vpy", clip) == 2
        assert f"the folder of OUTPUT ({folder}) is full" in capsys.readouterr().err
        assert {p.name for p in folder.iterdir()} == {"filler"}


def test_read_only_output_folder_is_refused_up_front(clip: Path, tmp_path: Path, capsys) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=200k") as folder:  # read-only even for root
        assert encode(clip, folder / "out.mkv", "--vpy", clip) == 2
        err = capsys.readouterr().err
        assert (
            err
            == f"streamdiffvsr: error: cannot write in the folder of OUTPUT ({folder}): Read-only file system\n"
        )


def test_variable_frame_rate_is_refused_with_the_command_that_fixes_it(
    tmp_path: Path, passthrough: Path, capsys
) -> None:
    vfr = tmp_path / "vfr.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=1",
        "-vf", "select='lt(t,0.5)+not(mod(n,3))'", "-fps_mode", "vfr", "-c:v", "libx264", str(vfr),
    )  # fmt: skip
    assert encode(vfr, tmp_path / "out.mkv", "--vpy", passthrough) == 2
    err = capsys.readouterr().err
    assert "INPUT has a variable frame rate (frames last 41.0 to 125.0 ms)" in err and err.count("\n") == 1
    command = err.split("`")[1]
    assert command.startswith("ffmpeg -i ") and " -fps_mode cfr -r 24 " in command
    subprocess.run(
        [*shlex.split(command.replace("CFR.mkv", str(tmp_path / "cfr.mkv"))), "-v", "error"], check=True
    )
    assert frame_duration_range(read_source(tmp_path / "cfr.mkv", "ffprobe")) is None
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.slow
def test_odd_yuv420_size_is_announced(tmp_path: Path, passthrough: Path, capsys) -> None:
    odd = tmp_path / "odd.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=33x25:rate=24:duration=0.125",
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "yuv420p",
        str(odd),
    )
    assert encode(odd, tmp_path / "out.mkv", "--vpy", passthrough) == 0
    assert (
        "streamdiffvsr: INPUT is 33x25 yuv420p, odd for its subsampled chroma: VapourSynth reads it as 32x24 "
        "(last column and last row dropped)\n" in capsys.readouterr().err
    )


def test_range_beyond_the_clip_is_refused_up_front(
    clip: Path, tmp_path: Path, passthrough: Path, capsys
) -> None:
    assert encode(clip, tmp_path / "out.mkv", "--vpy", passthrough, "--start", "8") == 2
    err = capsys.readouterr().err
    assert err == "streamdiffvsr: error: --start 8 is beyond the end of INPUT: it has 8 frames (0 to 7)\n"
    assert encode(clip, tmp_path / "out.mkv", "--vpy", passthrough, "--end", "20") == 2
    assert "--end 20 is beyond the end of INPUT" in capsys.readouterr().err


@pytest.mark.slow
def test_range_beyond_the_script_is_refused_before_rendering(clip: Path, tmp_path: Path, capsys) -> None:
    script = tmp_path / "short.vpy"  # a script whose clip is shorter than INPUT
    script.write_text(PASSTHROUGH_VPY + "clip[:3].set_output()\n")
    assert encode(clip, tmp_path / "out.mkv", "--vpy", script, "--start", "5") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "streamdiffvsr: error: --start 5 is beyond the script's last frame (2)"
    assert {p.name for p in tmp_path.iterdir()} == {"short.vpy"}


HDR10_X265 = (
    "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:max-cll=1000,400:"
    "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
)


# ffprobe's names of the HDR10 values -> the fields of H.264's SEI messages (primaries G, B, R as 0, 1, 2).
_SEI_FIELDS = {
    **{f"{name}_{axis}": f"display_primaries_{axis}[{k}]" for k, name in enumerate(("green", "blue", "red"))
       for axis in "xy"},
    "white_point_x": "white_point_x",
    "white_point_y": "white_point_y",
    "max_luminance": "max_display_mastering_luminance",
    "min_luminance": "min_display_mastering_luminance",
    "max_content": "max_content_light_level",
    "max_average": "max_pic_average_light_level",
}  # fmt: skip


def hdr10_read_back(path: Path) -> dict[str, int]:
    """The HDR10 static metadata of the first frame in the SEI's units (chromaticity in 1/50000, luminance in
    1/10000 cd/m2), whatever the codec's own: from ffprobe's frame side data, or for H.264 (whose SEI ffmpeg
    5.1's decoder does not export) from the bitstream."""
    (video,) = streams(probe(path), "video")
    if video["codec_name"] == "h264":
        trace = subprocess.run(
            ["ffmpeg", "-hide_banner", "-i", str(path), "-map", "0:v", "-frames:v", "1", "-c", "copy",
             "-bsf:v", "trace_headers", "-f", "null", "-"],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
        sei = dict(re.findall(r"^\[trace_headers @ \w+\] \d+ +(\S+) +[01]+ = (\d+)$", trace, re.MULTILINE))
        return {name: int(sei[field]) for name, field in _SEI_FIELDS.items() if field in sei}
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames",
         "-show_entries", "frame=side_data_list", "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    found = {}
    for data in json.loads(out)["frames"][0].get("side_data_list", []):
        kind = data.pop("side_data_type")
        if kind == "Mastering display metadata":
            found |= {key: round(Fraction(value) * (10000 if key.endswith("luminance") else 50000))
                      for key, value in data.items()}  # fmt: skip
        elif kind == "Content light level metadata":
            found |= {key: int(value) for key, value in data.items()}
    return found


@pytest.fixture(scope="module")
def hdr10_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("hdr10") / "hdr.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=24:duration=0.125", "-pix_fmt", "yuv420p10le",
        "-c:v", "libx265", "-x265-params", f"log-level=error:{HDR10_X265}",
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc", str(source),
    )  # fmt: skip
    return source


@pytest.mark.slow
@pytest.mark.parametrize("codec", list(CODECS))
def test_hdr10_keeps_matrix_and_static_metadata_in_each_codecs_syntax(
    hdr10_source: Path, tmp_path: Path, codec: str, capsys
) -> None:
    output = tmp_path / "out.mkv"
    assert encode(hdr10_source, output, "--model", "nano", *CHEAP, "--set", f"codec={codec}") == 0
    (video,) = streams(probe(output), "video")
    assert (video["width"], video["height"]) == (256, 192)
    assert (video["color_space"], video["color_primaries"], video["color_transfer"]) == (
        "bt2020nc",
        "bt2020",
        "smpte2084",
    )
    notice = "ffv1 cannot carry the source's HDR10 mastering display and light level metadata"
    if codec == "ffv1":
        assert notice in capsys.readouterr().err
    else:
        assert notice not in capsys.readouterr().err
        assert hdr10_read_back(output) == hdr10_read_back(hdr10_source) != {}


def test_invalid_x265_params_are_refused_up_front(
    clip: Path, tmp_path: Path, passthrough: Path, capsys
) -> None:
    params = "aq-mode=banana:bogus=1"  # ffmpeg only warns about these and encodes without them
    assert encode(clip, tmp_path / "out.mkv", "--vpy", passthrough, "--set", f"x265_params={params}") == 2
    assert capsys.readouterr().err == (
        f"streamdiffvsr: error: encoder.x265_params '{params}': Invalid value for aq-mode: banana; "
        "Unknown option: bogus (see `x265 --fullhelp`)\n"
    )
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.slow
def test_non_utf8_file_names_work(clip: Path, tmp_path: Path, passthrough: Path) -> None:
    folder = os.fsencode(tmp_path)
    source, output = folder + b"/caf\xe9.mkv", folder + b"/out caf\xe9.mp4"  # legal Linux names, not UTF-8
    shutil.copy(clip, source)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # as on a terminal with a UTF-8 locale
    result = subprocess.run(
        [str(CLI), "encode", source, output, "--vpy", str(passthrough), "--quiet"],
        capture_output=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"wrote " + folder + b"/out caf\\xe9.mp4\n"
    assert os.path.getsize(output) > 0


def test_missing_raft_weights_are_reported_before_a_worker_starts(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached; no network here
    assert encode(clip, tmp_path / "out.mkv", "--model", "nano", "--preset", "fast") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        "streamdiffvsr: error: flow raft_small needs torchvision's pretrained weights, which are not cached "
        f"({tmp_path / 'torch' / 'hub' / 'checkpoints' / 'raft_small_C_T_V2-01064c6d.pth'}); run `streamdiffvsr "
        "download --flow raft_small` once where there is network, or pass --set engine.flow_weights=FILE, or use "
        "--set engine.flow=dis"
    )
    assert not (tmp_path / "out.mkv").exists()


SLOW_VPY = """\
import time
import vapoursynth as vs
core = vs.core
clip = core.std.BlankClip(width=64, height=48, format=vs.YUV420P10, length=100000, fpsnum=24)
def slow(n, f):
    time.sleep(0.05)
    return f
core.std.ModifyFrame(clip, clip, slow).set_output()
"""


@pytest.mark.slow
def test_a_later_run_removes_what_a_killed_run_left(
    clip: Path, tmp_path: Path, passthrough: Path, capsys
) -> None:
    script = tmp_path / "slow.vpy"
    script.write_text(SLOW_VPY)
    output = tmp_path / "out.mkv"
    killed = subprocess.Popen([str(CLI), "encode", str(clip), str(output), "--vpy", str(script), "--quiet"])
    partial = tmp_path / f".out.partial-{killed.pid}.mkv"
    deadline = time.monotonic() + 120
    while not partial.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    killed.kill()
    killed.wait()
    assert partial.exists()  # SIGKILL leaves it: nothing can clean up then
    (tmp_path / f".out.partial-{killed.pid}.vpy").write_text("# the generated script of the killed run")
    with subprocess.Popen(["sleep", "60"]) as alive:
        running = tmp_path / f".out.partial-{alive.pid}.mkv"  # a run still going: not ours to touch
        running.write_bytes(b"in progress")
        try:
            assert encode(clip, output, "--vpy", passthrough) == 0
        finally:
            alive.kill()
    assert f"removed what an interrupted run left: .out.partial-{killed.pid}" in capsys.readouterr().err
    assert {p.name for p in tmp_path.iterdir()} == {"slow.vpy", "out.mkv", running.name}


@pytest.mark.slow
def test_audio_is_cut_to_a_late_starting_video(tmp_path: Path, passthrough: Path) -> None:
    late = tmp_path / "late.mkv"  # the video starts 0.5 s after the audio
    ffmpeg(
        "-itsoffset", "0.5", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=0.3333",
        "-f", "lavfi", "-i", "sine=duration=0.8333", "-map", "0", "-map", "1", "-c:v", "libx264", "-c:a", "aac",
        str(late),
    )  # fmt: skip
    output = tmp_path / "out.mkv"
    assert encode(late, output, "--vpy", passthrough) == 0
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:stream_tags=DURATION", "-of", "json",
         str(output)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    durations = {
        s["codec_type"]: sum(
            float(x) * 60**i for i, x in enumerate(reversed(s["tags"]["DURATION"].split(":")))
        )
        for s in json.loads(out)["streams"]
    }
    assert abs(durations["audio"] - durations["video"]) < 0.05, durations


@pytest.mark.slow
def test_an_output_created_meanwhile_is_never_replaced_without_overwrite(clip: Path, tmp_path: Path) -> None:
    """Two runs to one OUTPUT: the one that finishes second fails in one line and leaves the first's file."""
    script = tmp_path / "slow.vpy"
    script.write_text(SLOW_VPY.replace("length=100000", "length=60"))
    output = tmp_path / "out.mkv"
    cli = subprocess.Popen([str(CLI), "encode", str(clip), str(output), "--vpy", str(script), "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / f".out.partial-{cli.pid}.mkv").exists():
        assert cli.poll() is None and time.monotonic() < deadline, cli.communicate()
        time.sleep(0.05)
    output.write_bytes(b"the other run's encode")
    _, err = cli.communicate(timeout=120)
    assert cli.returncode == 1
    assert (
        err.splitlines()[-1].startswith("streamdiffvsr: error: ")
        and "pass --overwrite" in err.splitlines()[-1]
    )
    assert output.read_bytes() == b"the other run's encode"
    assert {p.name for p in tmp_path.iterdir()} == {"slow.vpy", "out.mkv"}
