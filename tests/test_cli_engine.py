"""The engine-side commands: ``frames``, ``download``, ``info`` and the default-model choice."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import streamdiffvsr
import streamdiffvsr.locate
from streamdiffvsr.cli.commands.frames import numbered_pngs
from streamdiffvsr.cli.main import main
from streamdiffvsr.cli.settings import models


def write_frames(folder: Path, count: int, dtype=np.uint8) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"frame{i}.png" for i in (1, 2, 10)][:count]
    peak = np.iinfo(dtype).max
    for name in names:
        cv2.imwrite(str(folder / name), (rng.random((16, 20, 3)) * peak).astype(dtype))
    return names


def test_numbered_pngs_are_in_natural_order(tmp_path: Path) -> None:
    write_frames(tmp_path / "in", 3)
    (tmp_path / "in" / "notes.txt").write_text("not a frame")
    assert [p.name for p in numbered_pngs(tmp_path / "in")] == ["frame1.png", "frame2.png", "frame10.png"]


def test_frames_upscales_a_folder_in_order(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    names = write_frames(tmp_path / "in", 3, np.uint16)
    args = ["frames", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tiny_checkpoint)]
    assert main([*args, "--set", "flow=dis", "--set", "steps=1"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    for name in names:
        image = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 80, 3) and image.dtype == np.uint16
    captured = capsys.readouterr()
    assert f"wrote 3 frames to {tmp_path / 'out'}" in captured.out
    assert "3/3 frames" in captured.err

    assert main(args) == 2  # the frames exist now
    assert "pass --overwrite" in capsys.readouterr().err


def test_frames_too_small_names_the_file_and_leaves_no_out_dir(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    args = ["frames", str(tmp_path / "in"), str(tmp_path / "out" / "deeper"), "--model", str(tiny_checkpoint)]
    assert main([*args, "--set", "flow=dis", "--set", "steps=1", "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"streamdiffvsr: error: {tmp_path / 'in' / 'a.png'}: ") and "8x8" in err[-1]
    assert not (tmp_path / "out").exists()


def test_frames_rejects_an_empty_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    assert main(["frames", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"streamdiffvsr: error: IN_DIR {tmp_path / 'in'} has no .png files"
    )


def test_default_model_is_the_official_one_if_cached_else_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, download: bool = True) -> Path:
        if name == streamdiffvsr.DEFAULT_MODEL:
            raise streamdiffvsr.ModelLoadError("not cached")
        return Path("/cache") / name

    monkeypatch.setattr(streamdiffvsr.locate, "resolve_checkpoint", offline)
    choice = models.choose_model(None)
    assert (choice.name, choice.path) == (models.EMBEDDED_MODEL, Path("/cache") / models.EMBEDDED_MODEL)
    assert "\n" not in choice.notice and "preview" in choice.notice and "download" in choice.notice

    monkeypatch.setattr(
        streamdiffvsr.locate, "resolve_checkpoint", lambda name, download=True: Path("/hub") / name
    )
    assert models.choose_model(None).name == streamdiffvsr.DEFAULT_MODEL


def test_download_prepares_a_local_checkpoint(tiny_checkpoint: Path, capsys) -> None:
    assert main(["download", str(tiny_checkpoint), "--flow", "raft_large"]) == 0
    assert f"ready at {tiny_checkpoint}" in capsys.readouterr().out


def test_download_flow_auto_is_the_models_own(capsys) -> None:
    assert main(["download", "nano", "--flow", "auto"]) == 0  # nano's own flow is dis: nothing to fetch
    assert capsys.readouterr().out.splitlines()[-1].startswith("nano: weights and prompt embedding ready at ")


def test_download_of_an_uncached_model_offline_is_one_line(capsys) -> None:
    assert main(["download", "nobody/no-such-model"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("streamdiffvsr: error: cannot download nobody/no-such-model here")
        and err.count("\n") == 1
    )


@pytest.mark.slow
def test_info_reports_the_tools(capsys) -> None:
    status = main(["info"])
    out = capsys.readouterr().out
    for label in (
        "python",
        "torch",
        "vapoursynth",
        "vspipe",
        "  bs",
        "  bwdif",
        "  vivtc",
        "ffmpeg",
        "  libx265",
        "model",
    ):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert status == (1 if "<- needed" in out else 0)
