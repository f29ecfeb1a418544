"""The package as a user installs it: the wheel built from a clean copy of the project, installed into a fresh
venv, run from a folder outside the repository. Every subpackage must be in the wheel (a forgotten one once made
every command a traceback); the venv takes its dependencies from the project's (so nothing is downloaded)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from streamdiffvsr.version import __version__
from tests.test_cli_encode import make_clip

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]


def clean_copy(target: Path) -> Path:
    """The project's files as a clone would have them: tracked and new files, nothing git ignores (no .venv,
    no build folder, no egg-info)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv with the wheel installed (no editable install, no repository on the path)."""
    work = tmp_path_factory.mktemp("wheel")
    copy = clean_copy(work / "copy")
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(work / "dist"), str(copy)], **run)  # fmt: skip
    (wheel,) = (work / "dist").glob("vs_streamdiffvsr-*.whl")
    venv = work / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], **run)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The project venv's packages after the fresh venv's own: the dependencies, never the package itself (its
    # editable finder sits in a .pth file there, which a path added this way does not run).
    (site / "project-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], **run
    )
    return venv / "bin"


def streamdiffvsr(bin_folder: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_folder}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [str(bin_folder / "streamdiffvsr"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def frames_and_size(path: Path) -> str:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_the_package_comes_from_the_wheel_not_the_repository(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import streamdiffvsr.cli.main as m; print(m.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(installed.parent), where


def test_every_command_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    """From a folder outside the repository: --help, --version, presets, encode --dry-run, a nano encode (4x,
    every frame) and preview."""
    make_clip(tmp_path / "in.mkv")  # 32x24, 8 frames
    cheap = ["--set", "steps=1", "--set", "flow=dis"]
    for args in (["--help"], ["encode", "--help"], ["presets"]):
        done = streamdiffvsr(installed, tmp_path, *args)
        assert done.returncode == 0, done.stderr
    version = streamdiffvsr(installed, tmp_path, "--version")
    assert version.stdout.strip() == f"streamdiffvsr {__version__}", version
    dry = streamdiffvsr(installed, tmp_path, "encode", "in.mkv", "out.mkv", "--dry-run", *cheap)
    assert dry.returncode == 0 and not (tmp_path / "out.mkv").exists(), dry.stderr
    done = streamdiffvsr(installed, tmp_path, "encode", "in.mkv", "out.mkv", *cheap)
    assert done.returncode == 0, done.stderr
    assert frames_and_size(tmp_path / "out.mkv") == "128,96,8"
    shown = streamdiffvsr(installed, tmp_path, "preview", "in.mkv", "look.png", "--at", "3", *cheap)
    assert shown.returncode == 0 and (tmp_path / "look.png").stat().st_size > 0, shown.stderr
