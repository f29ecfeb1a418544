"""scripts/example.vpy end to end: BestSource -> RGBS -> stream_diffvsr -> YUV420P10 -> vspipe -> x265."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "example.vpy"
VSPIPE = Path(sys.executable).parent / "vspipe"
FRAMES, WIDTH, HEIGHT = 5, 48, 32

pytestmark = pytest.mark.skipif(
    not VSPIPE.exists() or shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="needs vspipe beside the Python executable, ffmpeg and ffprobe",
)


@pytest.mark.slow
def test_example_vpy_through_vspipe_and_x265(tiny_checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "src.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=10",
         "-frames:v", str(FRAMES), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(source)],
        check=True,
    )  # fmt: skip
    output = tmp_path / "out.mkv"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    vspipe = subprocess.Popen(
        [str(VSPIPE), "-c", "y4m", str(SCRIPT), "-", "--arg", f"src={source}", "--arg", f"model={tiny_checkpoint}",
         "--arg", "flow=raft_large", "--arg", "steps=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    encode = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "-", "-c:v", "libx265", "-x265-params", "log-level=error",
         "-preset", "ultrafast", str(output)],
        stdin=vspipe.stdout, capture_output=True, text=True,
    )  # fmt: skip
    vspipe.stdout.close()
    errors = vspipe.stderr.read().decode(errors="replace")
    assert vspipe.wait() == 0, errors
    assert encode.returncode == 0, encode.stderr
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=width,height,nb_read_frames,pix_fmt,codec_name", "-of", "json", str(output)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["codec_name"] == "hevc"
    assert (stream["width"], stream["height"]) == (4 * WIDTH, 4 * HEIGHT)
    assert int(stream["nb_read_frames"]) == FRAMES
    assert stream["pix_fmt"] == "yuv420p10le"


@pytest.mark.slow
def test_relative_src_is_taken_from_where_vspipe_runs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The README's hand-run command with a relative src: vspipe runs the script in its own folder, but
    the user means the folder of their shell."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=10",
         "-frames:v", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "input.mkv")],
        check=True,
    )  # fmt: skip
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PWD": str(tmp_path),
    }  # as a shell sets it

    def info(src: str) -> subprocess.CompletedProcess[str]:
        command = [
            str(VSPIPE),
            "--info",
            str(SCRIPT),
            "--arg",
            f"src={src}",
            "--arg",
            f"model={tiny_checkpoint}",
        ]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)

    found = info("input.mkv")
    assert found.returncode == 0, found.stderr
    assert f"Width: {4 * WIDTH}" in found.stdout
    missing = info("nothere.mkv")
    assert missing.returncode != 0
    assert f"--arg src=nothere.mkv: no such file in {tmp_path} or {SCRIPT.parent}; pass an absolute path" in (
        missing.stderr
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "example.vpy: error: pass the input video with --arg src=PATH"),
        (["src=nothere.mkv"], "example.vpy: error: --arg src=nothere.mkv: no such file in "),
        (
            ["src=input.mkv", "model=Jamichsu/Stream-DiffVSR"],
            "example.vpy: error: model 'Jamichsu/Stream-DiffVSR' is not in",
        ),
        (
            ["src=input.mkv", "device=0"],
            "example.vpy: error: stream_diffvsr: device_index=0 asks for a CUDA device",
        ),
        (  # checked before the first frame, where it was a traceback and ffmpeg got an empty stream
            ["src=input.mkv", "model=nano", "flow=raft_large"],
            "example.vpy: error: torchvision's pretrained raft_large weights are not cached and cannot be "
            "downloaded",
        ),
    ],
)
def test_mistakes_are_one_line_without_a_traceback(tmp_path: Path, args: list[str], expected: str) -> None:
    """Offline, with empty caches and no CUDA: each mistake is one line of ours (vspipe adds its own two)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=10",
         "-frames:v", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "input.mkv")],
        check=True,
    )  # fmt: skip
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "CUDA_VISIBLE_DEVICES": "",
        "STREAMDIFFVSR_CACHE": str(tmp_path / "cache"), "PWD": str(tmp_path), "TORCH_HOME": str(tmp_path / "torch"),
    }  # fmt: skip
    command = [str(VSPIPE), "--info", str(SCRIPT)] + [part for a in args for part in ("--arg", a)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if line.startswith("example.vpy: error: ")]
    assert len(ours) == 1 and ours[0].startswith(expected), run.stderr
    assert "Traceback" not in run.stderr
