"""The processes of this test run: those whose environment carries the run's mark (set in conftest.py and
inherited by everything the tests start), so another user's or another test run's processes never count."""

from __future__ import annotations

import os
from pathlib import Path

TEST_RUN_VARIABLE = "STREAMDIFFVSR_TEST_RUN"


def own_processes() -> dict[int, str]:
    """pid -> command line of every live process of this test run but the test process itself."""
    mark = f"{TEST_RUN_VARIABLE}={os.environ[TEST_RUN_VARIABLE]}".encode()
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if mark not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(pid) != os.getpid() and cmdline:
            found[int(pid)] = cmdline
    return found
