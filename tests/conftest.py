"""Shared fixtures: everything offline, the tiny random checkpoint built once per session, and CPU thread counts
that no test leaves changed for the tests after it."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import TEST_RUN_VARIABLE

os.environ["HF_HUB_OFFLINE"] = "1"
# torch on one CPU thread unless a test sets another count: the suite runs its files in parallel processes
# (pytest-xdist), and two OpenMP pools on two cores spin against each other (tiny steps 40x slower, measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Every process this test run starts inherits it (Ray's daemons and workers too): tests that look for processes
# left behind count only those of this run, never another user's or another test run's (tests/processes.py).
# Each pytest-xdist worker takes a mark of its own: the processes of the test beside it are not this test's.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ[TEST_RUN_VARIABLE] = uuid.uuid4().hex
else:
    os.environ.setdefault(TEST_RUN_VARIABLE, uuid.uuid4().hex)
# matplotlib (preview's flicker plot) keeps its font cache here, not in the home folder of whoever runs the tests;
# the process that made the folder removes it when it ends.
if "MPLCONFIGDIR" not in os.environ:
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="streamdiffvsr-tests-matplotlib-")
    atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], ignore_errors=True)
os.environ.setdefault(
    "STREAMDIFFVSR_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "streamdiffvsr")
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight checkpoint in the official folder layout (with a random RAFT-large state dict)."""
    from streamdiffvsr.tiny_checkpoint import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")


@pytest.fixture(autouse=True)
def cpu_threads_restored() -> Iterator[None]:
    """torch's and OpenCV's thread counts as they were before the test (an in-process render worker, a test
    that pins one thread: whatever a test sets ends with it)."""
    from streamdiffvsr.threads import CpuThreads

    before = CpuThreads.current()
    yield
    before.apply()


@pytest.fixture(scope="module")
def one_cpu_thread() -> Iterator[None]:
    """One torch and OpenCV thread for a module's tests (two cores shared with other work: no oversubscription
    stalls), the counts before it restored after the module."""
    from streamdiffvsr.threads import CpuThreads

    before = CpuThreads.current()
    CpuThreads.uniform(1).apply()
    yield
    before.apply()


@pytest.fixture(scope="module")
def passthrough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's .vpy that passes the source through unchanged (no model)."""
    from tests.test_cli_encode import PASSTHROUGH_VPY

    script = tmp_path_factory.mktemp("vpy") / "pass.vpy"
    script.write_text(PASSTHROUGH_VPY + "clip.set_output()\n")
    return script


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four-scene clip with audio of ``tests.test_cli_segments.make_scenes``."""
    from tests.test_cli_segments import make_scenes

    return make_scenes(tmp_path_factory.mktemp("scenes") / "scenes.mkv")
