"""The local Ray instance behind ``encode --workers N``: ``python -m streamdiffvsr.cli.segments.ray_local CPUS GPUS``.

Run in its own session by the encode, it starts a Ray head that listens on 127.0.0.1 only (with Ray's token
authentication), prints its address, and waits for its stdin to close: when the encode ends or dies (even by
SIGKILL), it stops every process of that Ray instance (they share this process's group) and removes its
temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STOP_TIMEOUT_S = 5.0
# Without this Ray binds its services to the machine's network address even when told 127.0.0.1.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}


def ray_executable() -> str:
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.is_file() else shutil.which("ray") or "ray"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _group_members() -> list[int]:
    """The other live processes of this process's group (Ray's daemons and workers)."""
    group, members = os.getpgid(0), []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if os.getpgid(int(entry)) == group:
                    members.append(int(entry))
            except OSError:
                continue
    return members


def _stop_group() -> None:
    """SIGKILL every process of the instance and wait until they are gone: the instance is thrown away with
    its temporary folder, and Ray's orderly shutdown (SIGTERM) takes seconds an interrupted encode must not
    wait for. Killed again on each look, in case one was starting another."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (members := _group_members()) and time.monotonic() < deadline:
        for pid in members:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def main() -> int:
    cpus, gpus = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # our group is signalled when we stop it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    temp = tempfile.mkdtemp(prefix="sdv-ray-")  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    log = Path(temp) / "start.log"
    try:
        with log.open("w") as stderr:  # a file, not a pipe: Ray's daemons inherit it and outlive `ray start`
            started = subprocess.run(
                [ray_executable(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                 f"--num-cpus={cpus}", f"--num-gpus={gpus}", "--include-dashboard=false",
                 "--disable-usage-stats", f"--temp-dir={temp}"],
                env={**os.environ, **LOOPBACK_ENV}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, check=False,
            )  # fmt: skip
        if started.returncode != 0:
            lines = log.read_text(errors="replace").strip().splitlines()
            print("error: ray start failed: " + " | ".join(lines[-3:]), flush=True)
            return 1
        print(f"127.0.0.1:{port}", flush=True)
        sys.stdin.read()  # until the encode closes the pipe, or dies
        return 0
    finally:
        _stop_group()
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
