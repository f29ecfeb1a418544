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
