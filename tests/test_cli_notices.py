"""What the command says before it does something the user may not expect (issue 25, item 10): a step count the
model was not trained for, the warm-up before a ``--start`` inside a chain, fewer workers than ``--workers``
asked for, and what to do when ``download`` cannot reach the network."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from streamdiffvsr.cli.settings.models import ModelChoice, steps_notice
from streamdiffvsr.locate import EMBEDDED_MODELS, trained_steps
from tests.test_cli_encode import CLI, ffmpeg

FPS = 24
CUT = 12  # a scene cut at frame 12 of 24


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("notices") / "scenes.mkv"
    seconds = f"{CUT / FPS:.6f}"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=32x24:rate={FPS}:duration={seconds}",
        "-f", "lavfi", "-i", f"smptebars=size=32x24:rate={FPS}:duration={seconds}",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def test_the_trained_step_count_comes_from_the_checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> None:
    assert trained_steps(EMBEDDED_MODELS["nano"]()) == 4
    assert trained_steps(tiny_checkpoint) is None  # random weights: trained for nothing, so no notice
    official = tmp_path / "official"
    official.mkdir()
    (official / "model_index.json").write_text(json.dumps({"_class_name": "StreamDiffVSRPipeline"}))
    assert trained_steps(official) == 4  # the official checkpoint says nothing: the paper's four steps
    nano = ModelChoice("nano", EMBEDDED_MODELS["nano"](), "")
    assert steps_notice(4, nano) is None
    for steps in (1, 2, 8):
        notice = steps_notice(steps, nano)
        assert notice is not None and "trained for 4 steps" in notice and "engine.steps=4" in notice
    assert steps_notice(1, ModelChoice("tiny", tiny_checkpoint, "")) is None


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("streamdiffvsr: ")]


@pytest.mark.slow
def test_dry_run_says_steps_warmup_and_workers(two_scenes: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [str(CLI), "encode", str(two_scenes), str(tmp_path / "out.mkv"), "--model", "nano", "--preset", "preview",
         "--set", "codec=ffv1", "--start", "18", "--workers", "2", "--dry-run"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = notices(run.stderr)
    assert any("engine.steps is 1, but model nano was trained for 4 steps" in line for line in lines), lines
    assert any("--start 18: that frame is 6 frames into its chain (which starts at frame 12)" in line
               for line in lines), lines  # fmt: skip
    assert any("--workers 2: 1 segment to render, so 1 worker" in line for line in lines), lines
    assert len(lines) == len(set(lines))  # each said once
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_encode_from_a_chain_start_or_with_the_trained_steps_says_nothing_of_them(
    two_scenes: Path, tmp_path: Path
) -> None:
    run = subprocess.run(
        [str(CLI), "encode", str(two_scenes), str(tmp_path / "out.mkv"), "--model", "nano", "--set", "flow=dis",
         "--set", "codec=ffv1", "--start", str(CUT), "--end", str(CUT + 1), "--workers", "1", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    said = "\n".join(notices(run.stderr))
    assert "trained for" not in said and "warm-up" not in said and "--workers" not in said


@pytest.mark.slow
def test_encode_says_the_warmup_before_rendering_it(
    two_scenes: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    output = tmp_path / "out.mkv"
    run = subprocess.run(
        [str(CLI), "encode", str(two_scenes), str(output), "--model", str(tiny_checkpoint), "--set", "flow=dis",
         "--set", "steps=1", "--set", "codec=ffv1", "--start", "4", "--end", "5", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "--start 4: that frame is 4 frames into its chain (which starts at frame 0)" in run.stderr
    assert output.is_file()


@pytest.mark.slow
def test_download_offline_says_what_to_do_instead(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    run = subprocess.run([str(CLI), "download"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    cache = tmp_path / "hf" / "hub" / "models--Jamichsu--Stream-DiffVSR"
    assert line.startswith(
        "streamdiffvsr: error: cannot download Jamichsu/Stream-DiffVSR here (HF_HUB_OFFLINE"
    )
    assert f"copy {cache} from a machine where" in line and "--model nano" in line
    assert "with network access" not in line  # the former advice: run the very command that just failed


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to resume with another count")
def test_a_resume_on_another_core_count_says_which_thread_setting_resumes(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Begun on one core (segment.threads auto = 1), rerun on two: the refusal names --set segment.threads=1
    (issue 25, item 11), and that setting resumes the encode."""
    from tests.test_cli_segments import LOSSLESS, SEGMENTED, kill_after_first_segment, make_scenes

    scenes = make_scenes(tmp_path / "scenes.mkv")
    output = tmp_path / "out.mkv"
    args = [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED]
    kill_after_first_segment(
        ["--workers", "1", *args], tmp_path / ".out.mkv.segments", ["taskset", "-c", "0"]
    )
    rerun = subprocess.run([str(CLI), "encode", *args], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 2
    line = rerun.stderr.strip().splitlines()[-1]
    assert "(threads was 1, now 2)" in line and "rerun with --set segment.threads=1 to resume" in line
    resumed = subprocess.run(
        [str(CLI), "encode", *args, "--set", "segment.threads=1"], capture_output=True, text=True, timeout=300
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 1 of 4 segments already done" in resumed.stderr
