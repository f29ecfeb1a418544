"""``streamdiffvsr encode`` under hostile conditions (issue 12): full disks, read-only folders, dead runs,
awkward sources. Real vspipe/ffmpeg; most cases use a passthrough script instead of the model."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamdiffvsr.cli.main import main

from .test_cli_encode import make_clip

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


def encode(*args: str) -> int:
    return main(["encode", *map(str, args), "--quiet"])


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
