"""The command's own process stays light: no torch, diffusers or VapourSynth unless it renders in-process
(``preview``, ``frames``); the render workers load them. About 10 s of imports before any check, once per
command, otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "diffusers", "vapoursynth", "cv2")
RUN_AND_LIST_HEAVY = f"""
import sys
from streamdiffvsr.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("heavy:", ",".join(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def heavy_imports(*argv: str, cwd: Path) -> set[str]:
    run = subprocess.run([sys.executable, "-c", RUN_AND_LIST_HEAVY, *argv], cwd=cwd, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return set(filter(None, run.stderr.splitlines()[-1].removeprefix("heavy:").strip().split(",")))


@pytest.mark.parametrize(
    "argv", [["--help"], ["presets"], ["presets", "--keys"], ["script"], ["encode", "--help"]]
)
def test_commands_that_render_nothing_import_no_heavy_module(argv: list[str], tmp_path: Path) -> None:
    assert heavy_imports(*argv, cwd=tmp_path) == set()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_encode_dry_run_leaves_the_heavy_modules_to_its_worker(tmp_path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=0.25",
                    "-c:v", "libx264", str(tmp_path / "in.mkv")], check=True)  # fmt: skip
    assert heavy_imports("encode", "in.mkv", "out.mkv", "--model", "nano", "--dry-run", cwd=tmp_path) == set()
