"""``encode --ray`` on a cluster of several nodes, each in its own network namespace (``tests/ray_netns``): real
node addresses, nodes that are refused, die or lose their head. The tiny checkpoint on 32x24 clips, ffv1, so
that decoded frames can be compared with the one-machine encode's bit for bit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamdiffvsr.version import __version__
from tests.ray_netns import Cluster, Node, cluster, netns_available
from tests.test_cli_encode import CLI
from tests.test_cli_segments import LOSSLESS, SEGMENTED, SEGMENTS, framemd5

THREADS = ["--set", "segment.threads=1"]
WHY_NOT = netns_available()
pytestmark = [  # about 6 minutes on two busy cores
    pytest.mark.slow,
    pytest.mark.skipif(WHY_NOT is not None, reason=f"cannot create network namespaces: {WHY_NOT}"),
]


@pytest.fixture(scope="module")
def one_machine(scenes: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The decoded frames of the same segmented encode on this machine alone."""
    output = tmp_path_factory.mktemp("one") / "one.mkv"
    done = subprocess.run([str(CLI), "encode", str(scenes), str(output), "--model", str(tiny_checkpoint),
                           *LOSSLESS, *SEGMENTED, *THREADS], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return framemd5(output)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head and two worker nodes (one GPU declared each) for the module; nothing of it is left after."""
    with cluster(tmp_path_factory.mktemp("home")) as made:
        yield made
    assert made.leftovers() == []


class Driver:
    """An encode whose driver runs in the head's namespace, with ``--ray HEAD:PORT`` and the token, from
    OUTPUT's folder (Ray puts the driver's working directory first on the workers' path: not this source
    tree); its stderr lines with the time each came."""

    def __init__(self, where: Cluster, args: list[str]) -> None:
        self.process = where.head.run([str(CLI), "encode", *args, "--ray", where.address], where.env(),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                      cwd=Path(args[1]).parent)  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def when(self, text: str) -> float | None:
        """When the first line containing ``text`` came (None: none yet)."""
        return next((at for at, line in self.lines if text in line), None)

    def finish(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.process.kill()
            self.process.wait()
            self.reader.join(10)


def encode_on(where: Cluster, args: list[str]) -> subprocess.CompletedProcess[str]:
    driver = Driver(where, args)
    code = driver.finish()
    return subprocess.CompletedProcess(driver.process.args, code, "", driver.stderr)


def segment_nodes(log: str) -> dict[int, str]:
    """The address each finished segment names in the log."""
    return {
        int(m[1]): m[2] for m in re.finditer(r"segment (\d+)/\d+ .* done in .* \((10\.231\.0\.\d+)\)", log)
    }


def without_the_package(folder: Path) -> str:
    """A Python (a virtual environment in ``folder``) that has Ray (this one's site-packages on its path) but
    cannot import streamdiffvsr (this one's editable-install hook is a .pth file there, never run from a mere
    path entry)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    here = next(path for path in sys.path if path.endswith("site-packages"))
    site = next(folder.glob("lib/python*/site-packages"))
    (site / "ray-only.pth").write_text(here + "\n")
    python = str(folder / "bin" / "python")
    probe = subprocess.run([python, "-c", "import ray; import streamdiffvsr"], capture_output=True, text=True)
    assert "No module named 'streamdiffvsr'" in probe.stderr, probe.stderr
    return python


def test_segments_spread_over_the_nodes_and_equal_the_one_machine_encode_a_wrong_token_or_no_package_is_refused(
    nodes: Cluster, scenes: Path, tiny_checkpoint: Path, one_machine: list[str], tmp_path: Path
) -> None:
    """A node started with another token cannot join (Ray refuses it); meanwhile the encode runs on the other
    two, each segment's node named in the log, and its frames are the one-machine encode's with the same
    threads. A node whose Python cannot import the package is named in one line and takes no segment. Each
    node declares a GPU it does not have: a notice names it (it renders on its CPU)."""
    none = nodes.add_node("none", python=without_the_package(tmp_path / "venv"))
    intruder = nodes.add_host("wrong")
    try:
        joining = nodes.launch_ray(intruder, gpus=1, env=nodes.env(RAY_AUTH_TOKEN="0" * 32))
        output = tmp_path / "out.mkv"
        done = encode_on(nodes, [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS,
                                 *SEGMENTED, *THREADS])  # fmt: skip
        refused = joining.wait(120)
        log, left = nodes.start_log(intruder), intruder.pids()
    finally:
        nodes.stop_node(intruder)
        nodes.stop_node(none)
        nodes.wait_alive(3)  # the next encode takes the two worker nodes, not the node stopped here
    assert refused != 0 and "InvalidAuthToken" in log and left == [], log
    assert done.returncode == 0, done.stderr
    assert (
        f"streamdiffvsr: Ray node {none.address} refused: its Python cannot import streamdiffvsr; install "
        f"vs-streamdiffvsr {__version__} on every node" in done.stderr.splitlines()
    ), done.stderr
    where = segment_nodes(done.stderr)
    assert sorted(where) == list(range(1, SEGMENTS + 1)), done.stderr
    assert set(where.values()) == {node.address for node in workers(nodes)}, done.stderr
    on_cpu = [line for line in done.stderr.splitlines() if "but its worker sees no CUDA device" in line]
    assert sorted(on_cpu) == [  # each node that declares a GPU it lacks says so, once
        f"streamdiffvsr: Ray node {node.address} declares a GPU (ray start --num-gpus) but its worker sees no "
        "CUDA device: it renders on its CPU, much slower"
        for node in sorted(workers(nodes), key=lambda node: node.address)
    ], done.stderr
    assert framemd5(output) == one_machine
    assert nodes.leftovers() == []


def workers(where: Cluster) -> list[Node]:
    return [node for node in where.nodes.values() if node is not where.head]


def test_a_node_with_another_version_or_without_ffmpeg_is_refused_before_it_takes_a_segment(
    nodes: Cluster, scenes: Path, tiny_checkpoint: Path, one_machine: list[str], tmp_path: Path
) -> None:
    """Two more nodes: one where the package's metadata says another version (earlier on its Python path),
    one whose PATH has no ffmpeg. Each is named in one line and takes no segment; the others do the encode."""
    metadata = tmp_path / "other-version" / "vs_streamdiffvsr-9.9.9.dist-info"
    metadata.mkdir(parents=True)
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: vs-streamdiffvsr\nVersion: 9.9.9\n")
    bin_only = str(Path(sys.executable).parent)  # ray and python, no ffmpeg
    extra = [nodes.add_node("old", PYTHONPATH=str(metadata.parent)), nodes.add_node("bare", PATH=bin_only)]
    try:
        nodes.wait_alive(5)
        output = tmp_path / "out.mkv"
        done = encode_on(nodes, [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS,
                                 *SEGMENTED, *THREADS])  # fmt: skip
    finally:
        for node in extra:
            nodes.stop_node(node)
        nodes.wait_alive(3)  # the next encode takes the two worker nodes, not the nodes stopped here
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    old, bare = extra
    assert (
        f"streamdiffvsr: Ray node {old.address} refused: it has vs-streamdiffvsr 9.9.9, this encode {__version__}; install the same version on every node"
        in lines
    ), done.stderr
    assert any(
        line.startswith(f"streamdiffvsr: Ray node {bare.address} refused: ffmpeg not found; ")
        for line in lines
    ), done.stderr
    assert set(segment_nodes(done.stderr).values()) <= {node.address for node in workers(nodes)}
    assert framemd5(output) == one_machine
    assert nodes.leftovers() == []


def test_a_worker_node_killed_mid_segment_costs_that_segment_only(
    nodes: Cluster, scenes: Path, tiny_checkpoint: Path, one_machine: list[str], tmp_path: Path
) -> None:
    """A worker node's raylet SIGKILLed while the node's ffmpeg runs (frozen, so that the segment cannot end
    first): the segment is rendered again on the other node, within a bounded time, and the frames are the
    one-machine encode's."""
    victim = workers(nodes)[-1]
    output = tmp_path / "out.mkv"
    driver = Driver(nodes, [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED,
                            *THREADS])  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not victim.running("ffmpeg"):  # mid-segment: the node's ffmpeg runs
            assert driver.process.poll() is None and time.monotonic() < deadline, driver.stderr
            time.sleep(0.02)
        victim.kill("ffmpeg", sig=signal.SIGSTOP)  # the segment cannot end before Ray notices
        killed = time.monotonic()
        assert victim.kill("raylet")
        code = driver.finish()
        ended = time.monotonic()
    finally:
        driver.finish(0)
        nodes.stop_node(victim)
        nodes.add_node(f"w{nodes.hosts + 1}")  # the module's cluster has two worker nodes again
        nodes.wait_alive(3)
    assert code == 0, driver.stderr
    failed = [line for _, line in driver.lines if f"failed on {victim.address}" in line]
    assert len(failed) == 1 and failed[0].endswith("; trying again"), driver.stderr
    noticed = driver.when("trying again")
    print(
        f"\nraylet killed: noticed after {noticed - killed:.1f} s, encode ended {ended - killed:.1f} s after"
    )
    assert noticed - killed < 60, driver.stderr
    again = int(re.search(r"segment (\d+)/", failed[0])[1])
    where = segment_nodes(driver.stderr)
    assert sorted(where) == list(range(1, SEGMENTS + 1)) and where[again] != victim.address, driver.stderr
    assert framemd5(output) == one_machine
    assert nodes.leftovers() == []


def test_the_head_lost_stops_the_encode_in_one_line_and_a_new_cluster_resumes(
    nodes: Cluster, scenes: Path, tiny_checkpoint: Path, one_machine: list[str], tmp_path: Path
) -> None:
    """Once a segment is done, the worker nodes frozen (SIGSTOP: their segments stay in flight) and every Ray
    process of the head SIGKILLed (the driver, on the head, lives): the encode stops in one line within a
    bounded time and keeps its finished segments; the same command on another cluster (the module's) resumes,
    and the frames are the one-machine encode's."""
    output, home = tmp_path / "out.mkv", tmp_path / "home"
    manifest = tmp_path / ".out.mkv.segments" / "manifest.json"
    home.mkdir()
    args = [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED, *THREADS]
    with cluster(home, name="b") as first:
        driver = Driver(first, args)
        try:
            deadline = time.monotonic() + 300
            while not (manifest.is_file() and json.loads(manifest.read_text())["done"]):
                assert driver.process.poll() is None and time.monotonic() < deadline, driver.stderr
                time.sleep(0.05)
            for node in workers(first):  # the segments in flight stay in flight
                for pid in node.pids():
                    os.kill(pid, signal.SIGSTOP)
            lost = time.monotonic()
            assert first.head.kill(spare=driver.process.pid)
            code = driver.finish(300)
            ended = time.monotonic()
        finally:
            driver.finish(0)
    assert first.leftovers() == []
    print(f"\nhead lost: the encode ended {ended - lost:.1f} s after; {driver.stderr}")
    assert code == 2 and driver.lines[-1][1].startswith(
        "streamdiffvsr: error: lost the Ray cluster's head at "
    ), driver.stderr
    assert ended - lost < 60
    kept = len(json.loads(manifest.read_text())["done"])
    assert kept >= 1
    rerun = encode_on(nodes, args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {kept} of {SEGMENTS} segments already done" in rerun.stderr
    assert framemd5(output) == one_machine
    assert nodes.leftovers() == []


def test_a_worker_node_cut_off_mid_segment_costs_that_segment_and_its_living_writer_changes_nothing(
    nodes: Cluster, scenes: Path, tiny_checkpoint: Path, one_machine: list[str], tmp_path: Path
) -> None:
    """A worker node's link taken down while its ffmpeg runs (frozen, so that the segment cannot end first):
    the node is given up on and the segment rendered again on the other node within a bounded time. The cut-off
    node lives on: while the retry's ffmpeg writes (frozen too, to be sure of the order), the cut-off one is
    let go and writes its whole attempt on the shared storage, a second writer of the same segment; the retry
    is what goes into OUTPUT, whose frames are the one-machine encode's. Last in the module: the head counts
    the cut-off node as alive for a minute."""
    victim, other = workers(nodes)[-1], workers(nodes)[0]
    output = tmp_path / "out.mkv"
    driver = Driver(nodes, [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED,
                            *THREADS])  # fmt: skip
    try:
        stale = wait_for_ffmpeg(victim, driver, "")  # mid-segment: the node's ffmpeg runs
        victim.kill("ffmpeg", sig=signal.SIGSTOP)  # the segment cannot end before the node is cut off
        victim.cut()
        cut = time.monotonic()
        name = re.search(r"segment-\d+\.partial", stale[1])[0]
        retry = wait_for_ffmpeg(other, driver, name)
        os.kill(retry[0], signal.SIGSTOP)
        os.kill(stale[0], signal.SIGCONT)  # the stale writer writes its attempt while the retry's is open
        stale_file = Path(re.search(rf"file:(\S*{re.escape(name)}\S*)", stale[1])[1])
        target = stale_file.with_name(name.replace(".partial", ".nut"))
        deadline = time.monotonic() + 120
        while victim.running(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # its worker checks the file (and moved whatever had the shared name, before the fix)
        written = stale_file.stat().st_size if stale_file.exists() else 0
        placed_early = target.exists()  # nobody may move a file there while the retry's ffmpeg is frozen
        os.kill(retry[0], signal.SIGCONT)
        code = driver.finish()
        ended = time.monotonic()
    finally:
        driver.finish(0)
        nodes.stop_node(victim)
    noticed = driver.when("trying again")
    print(f"\nlink down: noticed after {noticed - cut:.1f} s, encode ended {ended - cut:.1f} s after")
    assert not placed_early, driver.stderr
    assert code == 0, driver.stderr
    assert written > 0 and not victim.running(name), (stale_file, driver.stderr)
    failed = [line for _, line in driver.lines if f"failed on {victim.address}" in line]
    assert len(failed) == 1 and "its node stopped answering for 15 s); trying again" in failed[0], (
        driver.stderr
    )
    assert f"Ray node {victim.address} has not answered for 15 s; its segments go to the other nodes" in (
        driver.stderr
    )
    assert noticed - cut < 40, driver.stderr
    again = int(re.search(r"segment (\d+)/", failed[0])[1])
    where = segment_nodes(driver.stderr)
    assert sorted(where) == list(range(1, SEGMENTS + 1)) and where[again] == other.address, driver.stderr
    assert framemd5(output) == one_machine
    assert not stale_file.exists()
    assert nodes.leftovers() == []


def wait_for_ffmpeg(node: Node, driver: Driver, text: str) -> tuple[int, str]:
    """The pid and command line of ``node``'s ffmpeg whose command line contains ``text``, once it runs."""
    deadline = time.monotonic() + 300
    while True:
        found = [(pid, line) for pid, line in node.find(text) if "ffmpeg" in line]
        if found:
            return found[0]
        assert driver.process.poll() is None and time.monotonic() < deadline, driver.stderr
        time.sleep(0.02)
