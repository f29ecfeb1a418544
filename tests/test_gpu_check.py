"""bench/gpu_check.sh rehearsed on the CPU (--cpu-dry-run, no compile): every step runs and the table comes last."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "DRY_RUN_COMPILE": ""}
    run = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--cpu-dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tail = run.stdout[run.stdout.index("## GPU check") :]
    assert "tests: " in tail and " 0 failed, 0 errors" in tail
    assert "| baseline | float32 |" in tail and "| ours | float32 |" in tail and "4: " in tail
    assert {p.name for p in tmp_path.iterdir()} >= {
        "setup.log",
        "tests.log",
        "tests.xml",
        "bench.log",
        "bench.json",
    }
    assert "cuda False" in (tmp_path / "setup.log").read_text()
