"""The encode's time estimate (issue 25, item 8): workers that share the CPU's cores, the encoder's share, the
warm-up before a ``--start``, the speed ``preview`` measures and ``encode --dry-run`` reads back, and the
progress lines of a log."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from streamdiffvsr.cli.progress import Progress
from streamdiffvsr.cli.segments import speeds
from streamdiffvsr.cli.segments.estimate import (
    RAY_START_SECONDS,
    SEGMENT_SECONDS,
    Estimate,
    cpu_sharing,
    encode_estimate,
    frame_seconds,
)
from streamdiffvsr.cli.settings.presets import load_settings
from tests.test_cli_encode import CLI, ffmpeg


def test_workers_sharing_a_cpu_are_each_slower() -> None:
    assert cpu_sharing("cpu", 2, 2, 2) == 2.0  # two workers of two threads on two cores
    assert cpu_sharing("cpu", 2, 1, 2) == 1.0  # one thread each: no contention
    assert cpu_sharing("cpu", 1, 2, 2) == 1.0
    assert cpu_sharing("cuda", 4, 8, 2) == 1.0  # a GPU each


def test_the_encoder_adds_on_a_cpu_and_overlaps_on_a_gpu() -> None:
    assert frame_seconds(0.3, 0.1, "cpu") == pytest.approx(0.4)
    assert frame_seconds(0.3, 0.1, "cuda") == 0.3
    assert frame_seconds(0.3, None, "cpu") == 0.3


def test_two_workers_on_two_cores_are_not_twice_as_fast() -> None:
    """The issue's case: 192 frames in four segments, 2 workers of 2 threads on 2 cores. The former estimate
    halved the time; the cores do not double, so the wall time must not drop below one worker's."""
    segments, spf, start = (48, 48, 48, 48), 0.15, 10.0
    one = Estimate(segments, spf, 1, SEGMENT_SECONDS, start).wall_seconds
    two = Estimate(segments, spf, 2, SEGMENT_SECONDS, start, shared=2.0, pool_start=RAY_START_SECONDS)
    assert two.wall_seconds >= one
    assert two.wall_seconds == pytest.approx(
        RAY_START_SECONDS + 2 * start + 2 * (SEGMENT_SECONDS + 48 * spf * 2)
    )
    assert "sharing the CPU cores (each 2.0x slower)" in two.describe(24, "cpu")


def test_the_warmup_is_rendered_and_said() -> None:
    speed = speeds.Speed(0.5, 4.0, "preview, today")
    estimate = encode_estimate((10,), speed, 1, "cpu", 2, warmup=30)
    assert estimate.frames == 10 and estimate.wall_seconds == pytest.approx(4 + SEGMENT_SECONDS + 40 * 0.5)
    block = estimate.describe(24, "cpu")
    assert "+30 of warm-up before the first" in block and "measured by preview, today" in block


def test_a_speed_is_kept_per_settings_model_size_device_and_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMDIFFVSR_CACHE", str(tmp_path))
    balanced, fast = load_settings("balanced"), load_settings("fast")
    key = speeds.speed_key(balanced, tmp_path, (64, 48), "cpu", 2)
    assert speeds.recorded(key) is None
    kept = speeds.record(key, 0.25, 9.0, "preview")
    assert speeds.recorded(key) == kept and kept.measured.startswith("preview, ")
    others = [
        speeds.speed_key(fast, tmp_path, (64, 48), "cpu", 2),
        speeds.speed_key(balanced, tmp_path / "other", (64, 48), "cpu", 2),
        speeds.speed_key(balanced, tmp_path, (96, 48), "cpu", 2),
        speeds.speed_key(balanced, tmp_path, (64, 48), "cuda:0", 2),
        speeds.speed_key(balanced, tmp_path, (64, 48), "cpu", 1),
    ]
    assert len({key, *others}) == 6 and all(speeds.recorded(k) is None for k in others)
    assert (
        speeds.speed_key(load_settings("balanced", ["segment.min_frames=5"]), tmp_path, (64, 48), "cpu", 2)
        == key
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_dry_run_prints_the_time_at_the_speed_preview_measured(tmp_path: Path, tiny_checkpoint: Path) -> None:
    clip = tmp_path / "clip.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24", "-frames:v", "24", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(clip))  # fmt: skip
    env = {**os.environ, "STREAMDIFFVSR_CACHE": str(tmp_path / "cache")}
    common = ["--model", str(tiny_checkpoint), "--set", "flow=dis", "--set", "steps=1"]
    dry_run = [str(CLI), "encode", str(clip), str(tmp_path / "out.mkv"), *common, "--dry-run"]
    before = subprocess.run(dry_run, capture_output=True, text=True, timeout=300, env=env)
    assert before.returncode == 0, before.stderr
    assert "speed      not measured" in before.stdout and "wall time" not in before.stdout
    look = subprocess.run(
        [str(CLI), "preview", str(clip), str(tmp_path / "look.png"), *common, "--at", "12"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert look.returncode == 0, look.stderr
    measured = next(line for line in look.stdout.splitlines() if line.startswith("  speed "))
    after = subprocess.run(dry_run, capture_output=True, text=True, timeout=300, env=env)
    assert after.returncode == 0, after.stderr
    assert measured in after.stdout.splitlines() and "measured by preview, " in measured
    assert "wall time" in after.stdout
    other = subprocess.run(
        [*dry_run, "--set", "steps=2"], capture_output=True, text=True, timeout=300, env=env
    )
    assert "speed      not measured" in other.stdout  # another setting: another speed


def test_progress_in_a_log_is_plain_lines() -> None:
    """stderr not a terminal: one plain line per update, never a carriage return or an escape sequence."""
    log = io.StringIO()
    progress = Progress(stream=log)
    progress.interval = 0.0
    for done in range(0, 11):
        progress.update(done, 10)
        progress.draw()
    progress.finish()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) >= 2 and lines[-1].startswith("upscaling [") and "10/10 frames" in lines[-1]
    assert len(lines) == len(set(lines))  # an unchanged line is not written again


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_redraws_one_line() -> None:
    screen = Terminal()
    progress = Progress(stream=screen)
    progress.update(5, 10)
    progress.draw(force=True)
    progress.finish()
    assert screen.getvalue().startswith("\r\x1b[K") and screen.getvalue().endswith("\n")
