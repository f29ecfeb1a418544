"""Paths as users type them: relative, with folders in them, from a working directory that is neither the
input's nor the output's (the README's Run command once failed so: `encode out/sample.mkv out/sample_4x.mkv`).
Every subcommand makes its paths absolute where it reads its arguments (``cli/arguments.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamdiffvsr.cli.main import main
from streamdiffvsr.cli.settings.presets import load_settings
from tests.test_cli_encode import CLI
from tests.test_cli_segments import LOSSLESS, SEGMENTED, SEGMENTS, framemd5, make_scenes

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """A working directory holding media/in.mkv (four scenes), presets/cheap.toml and scripts/mine.vpy (the
    script `streamdiffvsr script` prints for those settings), a copy of the tiny model in models/tiny, and the
    folders out/one and out/split."""
    root = tmp_path_factory.mktemp("paths")
    (root / "media").mkdir()
    make_scenes(root / "media" / "in.mkv")
    (root / "presets").mkdir()
    (root / "presets" / "cheap.toml").write_text(
        '[engine]\nflow = "dis"\nsteps = 1\n[encoder]\ncodec = "ffv1"\n'
    )
    (root / "scripts").mkdir()
    printed = subprocess.run([str(CLI), "script", "--preset", "presets/cheap.toml"], cwd=root,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    (root / "scripts" / "mine.vpy").write_text(printed)
    shutil.copytree(tiny_checkpoint, root / "models" / "tiny")
    for folder in ("out/one", "out/split"):
        (root / folder).mkdir(parents=True)
    return root


@pytest.mark.slow
def test_encode_one_segment_and_split_with_and_without_vpy_from_relative_paths(place: Path) -> None:
    """The four encodes run at once (each mostly waits on its own start-up): the same frames everywhere."""
    cases = {
        f"out/{kind}/{name}.mkv": [*script, *split]
        for kind, split in (("one", []), ("split", SEGMENTED))
        for name, script in (("generated", []), ("vpy", ["--vpy", "scripts/mine.vpy"]))
    }
    runs = {
        output: subprocess.Popen(
            [
                str(CLI),
                "encode",
                "media/in.mkv",
                output,
                "--model",
                "models/tiny",
                "--preset",
                "presets/cheap.toml",
                *LOSSLESS,
                *args,
            ],
            cwd=place,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for output, args in cases.items()
    }
    for output, run in runs.items():
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, f"{output}: {err}"
        assert f"wrote {place / output}" in out
        assert err.count(" done in ") == (SEGMENTS if "split" in output else 0), err
    frames = {output: framemd5(place / output) for output in cases}
    assert len(set(map(tuple, frames.values()))) == 1, frames
    assert not [
        p.name for p in (place / "out" / "split").iterdir() if p.name.startswith(".")
    ]  # no work folder


@pytest.mark.slow
def test_preview_with_relative_paths_keeps_the_working_directory(
    place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(place)
    argv = ["preview", "media/in.mkv", "pics/look.png", "--model", "models/tiny", "--preset",
            "presets/cheap.toml", "--at", "5", "--stretch", "0.2",
            "--compare", "preset=presets/cheap.toml,balanced"]  # fmt: skip
    (place / "pics").mkdir()
    assert main(argv) == 0
    assert os.getcwd() == str(place)  # the script ran in its own folder, and the command came back
    assert sorted(p.name for p in (place / "pics").iterdir()) == ["look-flicker.png", "look.png"]


def test_frames_with_relative_folders(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    (place / "pngs" / "in").mkdir(parents=True)
    for k in range(2):
        cv2.imwrite(str(place / "pngs" / "in" / f"f{k}.png"), np.full((24, 32, 3), 40 * k + 60, np.uint8))
    monkeypatch.chdir(place)
    assert main(["frames", "pngs/in", "pngs/out/x4", "--model", "models/tiny", "--preset",
                 "presets/cheap.toml", "--quiet"]) == 0  # fmt: skip
    assert sorted(p.name for p in (place / "pngs" / "out" / "x4").iterdir()) == ["f0.png", "f1.png"]


def test_a_relative_path_in_a_preset_file_is_from_its_folder_and_in_set_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "mine.toml").write_text('[engine]\nflow_weights = "weights/raft.safetensors"\n')
    monkeypatch.chdir(tmp_path)
    from_file = load_settings("presets/mine.toml")
    assert from_file["flow_weights"] == str(tmp_path / "presets" / "weights" / "raft.safetensors")
    from_set = load_settings("presets/mine.toml", ["engine.flow_weights=w/raft.safetensors"])
    assert from_set["flow_weights"] == str(tmp_path / "w" / "raft.safetensors")


@pytest.mark.slow
def test_the_source_index_goes_to_the_package_cache_not_home(tmp_path: Path) -> None:
    """BestSource writes an index for a long source (here 480 frames); by default into ~/bsindex."""
    source = tmp_path / "long.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=24:duration=20",
                    "-c:v", "libx264", "-g", "500", str(source)], check=True)  # fmt: skip
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "STREAMDIFFVSR_CACHE": str(cache)}
    run = subprocess.run([str(CLI), "encode", str(source), str(tmp_path / "out.mkv"), "--model", "tiny",
                          "--dry-run"], env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert list(cache.glob("bsindex/**/long.mkv*.bsindex"))
    assert not (home / "bsindex").exists()
