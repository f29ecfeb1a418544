"""The README's commands as a new user runs them (issue 19): after the set-up, on a fresh offline CPU machine
(empty caches, no CUDA), with the commands put on PATH the way the README says."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamdiffvsr.cli.main import build_parser
from streamdiffvsr.cli.settings.presets import bundled_presets, load_settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
VENV = Path(sys.executable).parent.parent
ACTIVATE = "source .venv/bin/activate"


def blocks(section: str, language: str) -> list[str]:
    """The ```language code blocks of the README section whose heading starts with ``section``."""
    start = README.index(f"\n{section}")
    end = README.find("\n## ", start + 1)
    return re.findall(rf"```{language}\n(.*?)```", README[start:end], flags=re.DOTALL)


def fresh_machine(folder: Path) -> dict[str, str]:
    """The environment of a user's shell on a new offline CPU machine: empty caches, the venv not on PATH, and
    ``folder`` holding .venv and scripts/ as the repository does."""
    (folder / ".venv").symlink_to(VENV)
    (folder / "scripts").symlink_to(ROOT / "scripts")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV / "bin")
    return {
        **{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
        "PATH": path,
        "PWD": str(folder),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(folder / "hf"),
        "TORCH_HOME": str(folder / "torch"),
        "STREAMDIFFVSR_CACHE": str(folder / "cache"),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }


def frames_and_size(path: Path) -> tuple[int, int, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,width,height", "-of", "json", str(path)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    stream = json.loads(out)["streams"][0]
    return int(stream["nb_read_frames"]), stream["width"], stream["height"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libx265")
def test_the_vpy_section_runs_as_written_on_a_fresh_offline_cpu_machine(tmp_path: Path) -> None:
    assert ACTIVATE in README.split("## In a `.vpy`")[0]  # said before any example needs it
    script, _prepared = blocks("## In a `.vpy`", "python")
    commands = blocks("## In a `.vpy`", "bash")
    assert len(commands) == 2
    env = fresh_machine(tmp_path)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=10", "-frames:v", "2",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "input.mkv")],
        check=True,
    )  # fmt: skip
    (tmp_path / "script.vpy").write_text(script, encoding="utf-8")
    for command in commands:
        run = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{ACTIVATE}\n{command}"],
            cwd=tmp_path, env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        output = tmp_path / shlex.split(command)[-1]
        assert frames_and_size(output) == (2, 128, 96)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libx265")
def test_the_vpy_sections_prepare_and_size_example_runs_as_written(tmp_path: Path) -> None:
    """The second script of the section, on an interlaced (tt) letterboxed source, through the section's first
    command: deinterlaced, the bars cropped, 2x, and the plan on stderr (stdout carries the video)."""
    _script, prepared = blocks("## In a `.vpy`", "python")
    command = blocks("## In a `.vpy`", "bash")[0]
    env = fresh_machine(tmp_path)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=20", "-frames:v", "2",
         "-vf", "pad=32:40:0:8,tinterlace=interleave_top,setfield=tff", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-flags", "+ildct+ilme", "-top", "1", "-field_order", "tt", str(tmp_path / "input.mkv")],
        check=True,
    )  # fmt: skip
    (tmp_path / "script.vpy").write_text(prepared, encoding="utf-8")
    run = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{ACTIVATE}\n{command}"], cwd=tmp_path, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "32x40 tt -> bwdif -> crop 0,8,0,8 -> 32x24 -> model 128x96 -> lanczos 64x48" in run.stderr
    assert frames_and_size(tmp_path / shlex.split(command)[-1]) == (2, 64, 48)


def test_every_raft_preset_is_covered_by_a_download_command_shown() -> None:
    lines = [line.split("#")[0].strip() for line in README.splitlines()]
    synopsis = [line for line in lines if line.startswith("streamdiffvsr download [")]
    assert len(synopsis) == 1 and "--flow" in synopsis[0]  # the command list shows the option
    fetched = set()
    for line in lines:
        if line.startswith("streamdiffvsr download") and line not in synopsis:
            fetched |= set(build_parser().parse_args(shlex.split(line)[1:]).flow or ["raft_large"])
    needed = {load_settings(name)["flow"] for name in bundled_presets()} & {"raft_large", "raft_small"}
    assert needed == {"raft_large", "raft_small"} and needed <= fetched


@pytest.mark.slow
def test_the_engine_section_runs_as_written_on_a_fresh_offline_cpu_machine(tmp_path: Path) -> None:
    """The Python API snippet makes its own frame from a PNG, runs nano on the CPU, saves the stream's state
    with safetensors and resumes from it exactly (issue 25, item 9)."""
    (snippet,) = blocks("## The engine (Python)", "python")
    assert 'dtype="bf16"' not in snippet.replace('dtype="bf16" is the default', "")
    env = fresh_machine(tmp_path)
    gradient = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint8)
    Image.fromarray(gradient).save(tmp_path / "frame.png")
    check = (
        "\nreference = engine.stream()\nreference.step(lr)\n"
        "assert torch.equal(resumed.step(lr), reference.step(lr))\nprint(tuple(hr.shape))\n"
    )
    run = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", snippet + check],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(1, 3, 192, 256)"
    assert (tmp_path / "state.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libx265")
def test_the_film_section_runs_as_written_on_a_fresh_offline_cpu_machine(tmp_path: Path) -> None:
    """Issue 31's examples, on tiny sources of each kind: an interlaced anamorphic DVD frame, a telecined film
    with sound, a letterboxed clip."""
    commands = blocks("### Preparing the input and sizing the output", "bash")[0]
    env = fresh_machine(tmp_path)

    def make(*args: str) -> None:
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", *args], cwd=tmp_path, check=True)

    make("-i", "testsrc2=size=720x480:rate=60000/1001", "-frames:v", "2", "-vf",
         "tinterlace=mode=interleave_top,setfield=tff,setsar=32/27", "-c:v", "libx264", "-flags", "+ildct+ilme",
         "-field_order", "tt", "-pix_fmt", "yuv420p", "dvd.mkv")  # fmt: skip
    make("-i", "testsrc2=size=64x48:rate=24000/1001:duration=0.834,telecine=pattern=23", "-f", "lavfi", "-i",
         "sine=duration=0.834", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
         "broadcast.mkv")  # fmt: skip
    make("-i", "testsrc2=size=64x32:rate=24:duration=0.125", "-vf", "pad=64:48:0:8:black", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "scope.mkv")  # fmt: skip
    run = subprocess.run(["bash", "-e", "-c", f"{ACTIVATE}\n{commands}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (
        "streamdiffvsr: geometry: 720x480 SAR 32:27 tt -> bwdif -> model 2880x1920 -> lanczos 1280x720"
        in run.stderr
    )
    assert (
        "method=before would run the model on 320x180 instead of 720x480 (17% of the model's pixels"
        in run.stderr
    )
    assert frames_and_size(tmp_path / "dvd_720p.mkv") == (2, 1280, 720)
    assert frames_and_size(tmp_path / "film.mkv") == (20, 256, 192)
    assert frames_and_size(tmp_path / "scope_2x.mkv") == (3, 128, 64)
