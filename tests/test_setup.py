"""scripts/setup.sh's checks, as a user's machine runs them (the set-up itself is what the suite runs in)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "scripts" / "setup.sh"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_the_ffmpeg_check_holds_every_time_under_pipefail() -> None:
    """`ffmpeg -encoders | grep -q libx265` under pipefail failed 7 times in 10 (grep stops, ffmpeg gets SIGPIPE)."""
    check = f'set -euo pipefail; source <(sed -n "/^ffmpeg_has_x265()/,/^}}/p" {SETUP}); ffmpeg_has_x265'
    for _ in range(20):
        assert subprocess.run(["bash", "-c", check]).returncode == 0


def test_without_python_3_12_setup_says_how_to_get_it(tmp_path: Path) -> None:
    """Only an older python3 on PATH, no uv or pyenv: one message with ways forward, no half-made .venv."""
    system = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info >= (3, 12))"],
                            capture_output=True, text=True)  # fmt: skip
    if system.returncode != 0 or system.stdout.strip() != "False":
        pytest.skip("needs a system python3 older than 3.12 at /usr/bin/python3")
    (tmp_path / "scripts").mkdir()
    shutil.copy(SETUP, tmp_path / "scripts" / "setup.sh")
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("ffmpeg",):
        (tools / tool).symlink_to(shutil.which(tool))
    env = {"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run(["bash", "scripts/setup.sh"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("setup: Python 3.12 or newer is required"), run.stderr
    assert "uv python install 3.12" in lines[0] and "pyenv install 3.12" in lines[0]
    assert not (tmp_path / ".venv").exists()


@pytest.mark.slow
def test_the_editable_install_warning_box_is_silenced(tmp_path: Path) -> None:
    """setuptools' "Editable installation" box, printed on every run of setup.sh for a layout like ours."""
    text = SETUP.read_text()
    assert "PYTHONWARNINGS=\"$EDITABLE_QUIET\" .venv/bin/python -m pip install -q -e '.[dev]'" in text
    quiet = re.search(r'^EDITABLE_QUIET="([^"]+)"$', text, re.MULTILINE).group(1)
    project = tmp_path / "project"  # package_dir maps a folder to another name, as ours does
    (project / "core").mkdir(parents=True)
    (project / "core" / "__init__.py").write_text("")
    (project / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='p', version='0', packages=['p'], package_dir={'p': 'core'})\n"
    )
    build = [sys.executable, "-c", "import sys; from setuptools.build_meta import build_editable; "
             "build_editable(sys.argv[1])", str(tmp_path / "wheel")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    loud = subprocess.run(build, cwd=project, env=env, capture_output=True, text=True)
    assert loud.returncode == 0 and "Editable installation" in loud.stderr, loud.stderr
    silenced = subprocess.run(
        build, cwd=project, env={**env, "PYTHONWARNINGS": quiet}, capture_output=True, text=True
    )
    assert silenced.returncode == 0 and "Editable installation" not in silenced.stderr, silenced.stderr
