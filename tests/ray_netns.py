"""A Ray cluster of several nodes on this machine, each node in its own network namespace: the test's own
hosts on the test's own network (10.231.0.0/24 on a bridge inside a namespace of the test), so Ray runs across
real node addresses while no packet leaves the namespaces the test created. The nodes share the filesystem
(namespaces share the mount namespace), which stands in for the shared storage a cluster encode needs.

Everything a ``Cluster`` starts lives in its namespaces: teardown kills exactly the processes inside them,
deletes the namespaces (with them every interface) and the nodes' temporary folders, and ``leftovers`` says
what of the cluster is still there (nothing, after ``close``). Needs root (``ip netns add``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.231.0"
HEAD_PORT = 6379
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
RAYLET_STOP_S = 5.0
ALIVE_TIMEOUT_S = 120.0  # a node the head cannot reach any more counts as alive for about a minute
RAY = str(Path(sys.executable).parent / "ray")
DRIVER = str(Path(sys.executable).parent / "streamdiffvsr")  # an encode's command line
IP = shutil.which("ip") or "/usr/sbin/ip"  # by path: a node's PATH may be cut down
# Not RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (what keeps --workers' instance on loopback): it refuses a second node.
RAY_ENV = {"RAY_AUTH_MODE": "token"}


def netns_available() -> str | None:
    """None if this process may create network namespaces, else why not (the error of ``ip netns add``)."""
    name = f"sdvt{os.getpid()}-probe"
    probe = subprocess.run([IP, "netns", "add", name], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return probe.stderr.strip() or f"ip netns add: exit status {probe.returncode}"
    subprocess.run([IP, "netns", "del", name], check=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, text=True)


def _inode(namespace: str) -> int:
    return os.stat(f"/run/netns/{namespace}").st_ino


def _net_inode(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


@dataclass
class Node:
    """A host of the test: a network namespace with one interface (eth0) on the cluster's bridge."""

    name: str
    namespace: str
    address: str
    inode: int
    temp: Path

    def run(self, args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
        """``args`` started inside this node's namespace (in a session of its own)."""
        return subprocess.Popen([IP, "netns", "exec", self.namespace, *args], env=env,
                                start_new_session=True, **kwargs)  # fmt: skip

    def pids(self) -> list[int]:
        """The live processes inside this node's namespace."""
        return [int(pid) for pid in filter(str.isdigit, os.listdir("/proc")) if _net_inode(pid) == self.inode]

    def running(self, process: str) -> bool:
        """Whether a process of this node has ``process`` in its command line."""
        return bool(self.find(process))

    def find(self, process: str) -> list[tuple[int, str]]:
        """The pid and command line of each process of this node with ``process`` in its command line."""
        return [(pid, line) for pid in self.pids() if process in (line := _cmdline(pid))]

    def cut(self) -> None:
        """Take this node's link down: it lives on, cut off from every other host (its packets go nowhere)."""
        _ip("-n", self.namespace, "link", "set", "eth0", "down")

    def kill(self, process: str = "", spare: int | None = None, sig: int = signal.SIGKILL) -> list[int]:
        """Signal (SIGKILL) the processes of this node whose command line contains ``process`` (all if
        empty), but ``spare``."""
        killed = []
        for pid in self.pids():
            if process in _cmdline(pid) and pid != spare:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                    killed.append(pid)
        return killed


@dataclass
class Cluster:
    """The hub namespace (the bridge) and the nodes on it; node 1 is the Ray head."""

    prefix: str
    home: Path
    token: str
    nodes: dict[str, Node] = field(default_factory=dict)
    inodes: set[int] = field(default_factory=set)
    namespaces: list[str] = field(default_factory=list)
    hosts: int = 0  # hosts added so far: the next one's address and bridge port

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    @property
    def head(self) -> Node:
        return next(iter(self.nodes.values()))

    @property
    def address(self) -> str:
        return f"{self.head.address}:{HEAD_PORT}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the cluster's processes: the token in it, a home folder of the test's own."""
        return {**os.environ, **RAY_ENV, "HOME": str(self.home), "RAY_AUTH_TOKEN": self.token, **extra}

    def _namespace(self, name: str) -> str:
        namespace = f"{self.prefix}-{name}"
        _ip("netns", "add", namespace)
        self.namespaces.append(namespace)
        self.inodes.add(_inode(namespace))
        _ip("-n", namespace, "link", "set", "lo", "up")
        return namespace

    def open_hub(self) -> None:
        self._namespace("hub")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")

    def add_host(self, name: str) -> Node:
        """A namespace wired to the bridge with the next address; nothing runs in it yet."""
        self.hosts += 1
        index = self.hosts
        namespace = self._namespace(name)
        port = f"v{index}"
        _ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("-n", self.hub, "link", "set", port, "master", "br0", "up")
        address = f"{SUBNET}.{index}"
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        temp = Path(f"/tmp/{self.prefix}-{name}")  # short: Ray's socket paths must fit in 107 bytes
        temp.mkdir()
        node = Node(name, namespace, address, _inode(namespace), temp)
        self.nodes[name] = node
        return node

    def launch_ray(
        self, node: Node, gpus: int, env: dict[str, str] | None = None, python: str = sys.executable
    ) -> subprocess.Popen:
        """``ray start`` on ``node`` run by ``python`` (its workers' Python), not waited for: the head if it is
        the first node, else a node joining the head (its output in the node's ``start.log``)."""
        role = [f"--address={self.address}"]
        if node is self.head:
            role = ["--head", f"--port={HEAD_PORT}", "--include-dashboard=false"]
        with (node.temp / "start.log").open("w") as log:
            return node.run(
                [python, RAY, "start", *role, f"--node-ip-address={node.address}", f"--num-gpus={gpus}",
                 f"--num-cpus={1 if gpus else 0}", "--object-store-memory=80000000", "--disable-usage-stats",
                 f"--temp-dir={node.temp}"],
                env or self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    def start_ray(
        self, node: Node, gpus: int, env: dict[str, str] | None = None, python: str = sys.executable
    ) -> None:
        """``ray start`` on ``node``, waited for (a RuntimeError if it fails)."""
        code = self.launch_ray(node, gpus, env, python).wait(START_TIMEOUT_S)
        if code != 0:
            raise RuntimeError(f"ray start on {node.name} failed ({code}): {self.start_log(node)}")

    def start_log(self, node: Node) -> str:
        return (node.temp / "start.log").read_text(errors="replace")[-2000:]

    def add_node(self, name: str, gpus: int = 1, python: str = sys.executable, **env: str) -> Node:
        node = self.add_host(name)
        self.start_ray(node, gpus, self.env(**env) if env else None, python)
        return node

    def alive(self) -> int:
        """How many nodes the head counts as alive (``ray status``, asked from the head's namespace)."""
        status = self.head.run([RAY, "status", f"--address={self.address}"], self.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        try:
            out = status.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            status.kill()
            return 0
        active = out.partition("Active:")[2].partition("Pending:")[0]
        return sum(line.strip().startswith("1 node_") for line in active.splitlines())

    def wait_alive(self, count: int) -> None:
        """Until the head counts ``count`` live nodes (a new node registers after ``ray start`` returns)."""
        deadline = time.monotonic() + ALIVE_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.alive() == count:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster has {self.alive()} live nodes, not {count}")

    def stop_node(self, node: Node) -> None:
        """Stop ``node``'s raylet (SIGTERM: it tells the head, which counts the node out at once, where it can
        reach it), kill every process of ``node`` and remove its namespace (its interfaces go with it)."""
        node.kill("raylet", sig=signal.SIGTERM)
        deadline = time.monotonic() + RAYLET_STOP_S
        while node.running("raylet") and time.monotonic() < deadline:
            time.sleep(0.2)
        _kill_all(node)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", node.namespace)
        self.namespaces.remove(node.namespace)
        shutil.rmtree(node.temp, ignore_errors=True)
        del self.nodes[node.name]

    def close(self) -> None:
        for node in reversed(list(self.nodes.values())):
            self.stop_node(node)
        for namespace in list(self.namespaces):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", namespace)
            self.namespaces.remove(namespace)

    def leftovers(self) -> list[str]:
        """What the test made that the cluster no longer holds: processes in namespaces it removed, an
        encode's driver still running, namespaces or temporary folders of nodes it removed. Empty after
        ``close`` means nothing at all is left."""
        live = {node.inode for node in self.nodes.values()}
        # A removed namespace's inode number may be taken by a namespace someone else (another test run) made.
        foreign = set()
        for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
            if not name.startswith(f"{self.prefix}-"):
                with contextlib.suppress(OSError):
                    foreign.add(_inode(name))
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            inode, cmdline = _net_inode(pid), _cmdline(pid)
            if inode in self.inodes - foreign and (inode not in live or DRIVER in cmdline):
                found.append(f"pid {pid}: {cmdline}")
        listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, check=True).stdout
        found += [f"namespace {name}" for name in (line.split()[0] for line in listed.splitlines())
                  if name.startswith(f"{self.prefix}-") and name not in self.namespaces]  # fmt: skip
        temps = {node.temp for node in self.nodes.values()}
        found += [f"folder {path}" for path in Path("/tmp").glob(f"{self.prefix}-*") if path not in temps]
        return found


def _kill_all(node: Node) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while node.kill() and time.monotonic() < deadline:
        time.sleep(0.2)


def _cmdline(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def cluster(home: Path, workers: int = 2, name: str = "") -> Iterator[Cluster]:
    """A head (no GPU: the encode's driver runs there) and ``workers`` nodes declaring one GPU each (the CPU
    stands in); torn down however the block ends. ``name`` tells apart clusters of one test process."""
    made = Cluster(f"sdvt{os.getpid()}{name}", home, os.urandom(16).hex())
    try:
        made.open_hub()
        made.start_ray(made.add_host("head"), gpus=0)
        for index in range(1, workers + 1):
            made.add_node(f"w{index}")
        made.wait_alive(workers + 1)
        yield made
    finally:
        made.close()
