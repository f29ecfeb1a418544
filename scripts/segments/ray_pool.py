"""Jobs on Ray: a local instance (``--workers N``, loopback only, its own token) or an existing cluster
(``--ray ADDRESS``, the cluster's token). Each worker is a Ray actor holding an ``EvaluatedScript``: the script and
model are loaded once per actor (one GPU each, or a share of this machine's cores), and the actor encodes job
after job. Ray is imported here only."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.preflight.request import ClusterAccess
from streamdiffvsr.cli.segments.admission import DISTRIBUTION, node_problem, package_version
from streamdiffvsr.cli.segments.jobs import Job, Result, ScriptSpec, Segment
from streamdiffvsr.cli.segments.ray_local import LOOPBACK_ENV
from streamdiffvsr.cli.segments.worker import EvaluatedScript, switch_script

CONNECT_TIMEOUT_S = 25.0  # a whole --ray failure stays within 30 s
TCP_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 2.0  # a gRPC server answers HTTP/2's preface at once
START_TIMEOUT_S = 120.0
PROGRESS_TIMEOUT_S = 2.0
NODE_SILENT_S = 15.0  # a running worker unheard this long: its node is cut off (Ray itself waits about 60 s)
HEAD_CHECK_S = 2.0  # how often the pool checks that the head still answers
HEAD_LOST_S = 15.0  # no answer this long: the encode stops (Ray's own nodes give up after 60 s)
TOKEN_FILE = Path("~/.ray/auth_token")


class ScriptActor:
    """What a Ray worker process holds: the evaluated script; ``progress`` answers while ``encode`` runs. It
    loads nothing on a node that cannot render this encode (``node_problem``): ``hello`` says why."""

    def __init__(self, spec: ScriptSpec, version: str) -> None:
        self.problem = node_problem(version)
        self.script = EvaluatedScript(spec) if self.problem is None else None
        self.done = 0

    def hello(self) -> str | None:
        """Why this node cannot take a segment, or None: asked before it is given one."""
        return self.problem

    def cuda_devices(self) -> int:
        """The CUDA devices this worker sees (0: it renders on the CPU)."""
        return self.script.cuda_devices

    def encode(self, job: Job) -> Result:
        import ray

        self.done = 0
        self.script = switch_script(self.script, job.script)
        result = self.script.encode(job, self._report)
        return dataclasses.replace(result, node=f"{result.node} ({ray.util.get_node_ip_address()})")

    def _report(self, done: int) -> None:
        self.done = done

    def progress(self) -> int:
        return self.done


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT of a Ray cluster's head (a CliError otherwise, before anything starts)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(
            f"--ray {address!r} is not HOST:PORT (the address of the cluster's head, e.g. 10.0.0.5:6379)"
        )
    return host.strip("[]"), int(port)


def cluster_token() -> str | None:
    """The cluster's token as Ray documents it: $RAY_AUTH_TOKEN, else the file $RAY_AUTH_TOKEN_PATH, else
    ~/.ray/auth_token. None if none is found."""
    if token := os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return token
    path = _token_file()
    with contextlib.suppress(OSError):
        return path.read_text().strip() or None
    return None


def _token_file() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or TOKEN_FILE).expanduser()


def _token_origin() -> str:
    """Where ``cluster_token`` found the token, for a message."""
    return "$RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN", "").strip() else str(_token_file())


# What a gRPC server (a Ray head's GCS) takes first: HTTP/2's client preface and an empty SETTINGS frame. Its
# answer starts with a SETTINGS frame: a 9-byte frame header whose fourth byte, the frame type, is 4.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS_FRAME = 4


def _check_listening(address: str) -> None:
    """Something listens at ``address``, and unless the cluster uses TLS, it answers as a gRPC server does (not,
    say, a dashboard's HTTP port, against which Ray would retry until CONNECT_TIMEOUT_S); silence and hang-ups
    are left to ray.init."""
    host, port = parse_address(address)
    try:
        connection = socket.create_connection((host, port), timeout=TCP_TIMEOUT_S)
    except OSError as exc:
        raise CliError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); is its head running?"
        ) from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        connection.close()
        return
    with connection:
        reply = _first_bytes(connection, 4)
    if reply and (len(reply) < 4 or reply[3] != SETTINGS_FRAME):
        raise CliError(
            f"{address} answers, but not as a Ray cluster's head (gRPC); is it another service or a dashboard's "
            "port? --ray takes the address 'ray start --head' prints, port 6379 unless it was given another"
        )


def _first_bytes(connection: socket.socket, count: int) -> bytes:
    """Up to ``count`` bytes of the answer to HTTP/2's preface (fewer on a hang-up or REPLY_TIMEOUT_S)."""
    reply = b""
    try:
        connection.settimeout(REPLY_TIMEOUT_S)
        connection.sendall(HTTP2_PREFACE)
        while len(reply) < count and (more := connection.recv(count - len(reply))):
            reply += more
    except OSError:
        pass
    return reply


@contextlib.contextmanager
def _native_log_kept_away() -> Iterator[None]:
    """Ray's C++ side logs straight to file descriptor 2 while it connects (each retry, each refused token): for
    that time fd 2 goes to a file nobody reads, and the command's own one line says what went wrong."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _record_the_command_line_as_text() -> None:
    """Ray records the driver's command line as its job's entrypoint, text that must be UTF-8: a file name that
    is not (legal on Linux) made ray.init fail. It is recorded with that name's odd bytes replaced; the name
    itself reaches the workers pickled, bytes intact."""
    import ray._private.utils as ray_utils

    entrypoint = ray_utils.get_entrypoint_name
    if getattr(entrypoint, "as_text", False):
        return

    def as_text() -> str:
        return entrypoint().encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    as_text.as_text = True  # type: ignore[attr-defined]
    ray_utils.get_entrypoint_name = as_text


def _init(address: str, token_from: str) -> None:
    """ray.init, given CONNECT_TIMEOUT_S: an address that is not a Ray head makes Ray retry for minutes. The
    token is tried first, alone: ray.init retries a refused one for 20 s."""
    import ray
    from ray._raylet import GcsClient

    failure: list[BaseException] = []

    def connect() -> None:
        try:
            GcsClient(address=address)  # an AuthenticationError at once where the token is not the cluster's
            ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=True)
        except BaseException as exc:  # reported by the caller
            failure.append(exc)

    thread = threading.Thread(target=connect, daemon=True)
    _record_the_command_line_as_text()
    with _native_log_kept_away():
        thread.start()
        thread.join(CONNECT_TIMEOUT_S)
    if thread.is_alive():
        raise CliError(f"{address} does not answer as a Ray cluster within {CONNECT_TIMEOUT_S:.0f} s")
    if failure and isinstance(failure[0], ray.exceptions.AuthenticationError):
        raise CliError(
            f"the Ray cluster at {address} refuses the token from {token_from}: it is not that cluster's; "
            "set RAY_AUTH_TOKEN to the token `ray get-auth-token` prints on the cluster's head"
        )
    if failure:
        reason = str(failure[0]).strip().splitlines()
        raise CliError(
            f"cannot join the Ray cluster at {address}: {reason[0] if reason else type(failure[0]).__name__}"
        )


def check_cluster(address: str) -> ClusterAccess:
    """Whether the cluster at ``address`` can be joined, without joining it: something listens there and
    answers as a gRPC server, and this driver has a token for it. Each failure is a one-line CliError; nothing
    connects to Ray, nothing is imported, the environment is left as it is (``joined`` does the rest)."""
    _check_listening(address)
    if os.environ.get("RAY_AUTH_MODE", "token") != "token":
        return ClusterAccess(address)
    token = cluster_token()
    if token is None:
        raise CliError(
            f"no token for the Ray cluster at {address}: looked in $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH "
            f"and {TOKEN_FILE}; set RAY_AUTH_TOKEN to the cluster's token"
        )
    return ClusterAccess(address, token, _token_origin())


@contextlib.contextmanager
def joined(access: ClusterAccess) -> Iterator[None]:
    """This driver in the cluster ``check_cluster`` found, for the block: its token in the environment, Ray
    joined within CONNECT_TIMEOUT_S, and a GPU there (a worker runs on each); Ray left and the environment as it
    was after. Each failure to join is a one-line CliError."""
    names = ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE", *LOOPBACK_ENV)
    saved = {name: os.environ.get(name) for name in names}
    if access.token is not None:
        os.environ.update({"RAY_AUTH_TOKEN": access.token, "RAY_AUTH_MODE": "token"})
    try:
        connect(access.address, local=False, token_from=access.token_from)
        import ray

        if not ray.cluster_resources().get("GPU", 0):
            raise CliError(
                f"the Ray cluster at {access.address} has no GPU: a cluster encode runs one worker per GPU"
            )
        yield
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def connect(address: str, local: bool, token_from: str = "$RAY_AUTH_TOKEN") -> None:
    """Join the Ray cluster at ``address`` with token authentication (never switched off here); a cluster
    ``check_cluster`` has seen, or the local instance (``token_from``: where the token was found)."""
    if local or parse_address(address)[0] in ("127.0.0.1", "localhost", "::1"):
        for name, value in LOOPBACK_ENV.items():  # a cluster on loopback: this driver must be reachable there
            os.environ.setdefault(name, value)
    previous = signal.getsignal(signal.SIGTERM)
    _init(address, token_from)
    signal.signal(signal.SIGTERM, previous)  # ray.init installs its own: keep the command's (stop everything)


@contextlib.contextmanager
def local_instance(cpus: int, gpus: int) -> Iterator[str]:
    """A Ray head on 127.0.0.1 for this encode (see ray_local), with a token made for its lifetime alone (in
    the environment of its processes and of this driver, never written to the home folder); stopped when the
    block ends or we die."""
    token = secrets.token_hex(32)
    os.environ.update({**LOOPBACK_ENV, "RAY_AUTH_TOKEN": token})
    guardian = subprocess.Popen(
        [sys.executable, "-m", "streamdiffvsr.cli.segments.ray_local", str(cpus), str(gpus)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = guardian.stdout.readline().strip()
        if not line or line.startswith("error"):
            raise CliError(f"cannot start a local Ray instance for --workers ({line or 'no address'})")
        yield line
    finally:
        guardian.stdin.close()  # it stops Ray and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            guardian.wait(START_TIMEOUT_S)


@dataclasses.dataclass(frozen=True)
class Place:
    """Where one worker runs: a node of the cluster (its id and address)."""

    node_id: str
    address: str


def _places(workers: int | None, jobs: int) -> list[Place]:
    """One place per worker: ``workers`` on the local instance's node, or one per GPU of each live node of the
    cluster (the nodes taken in turn), never more than ``jobs``."""
    import ray

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if workers is not None:
        return [Place(nodes[0]["NodeID"], nodes[0]["NodeManagerAddress"])] * min(workers, jobs)
    gpus = {node["NodeID"]: int(node["Resources"].get("GPU", 0)) for node in nodes}
    turns = [
        Place(node["NodeID"], node["NodeManagerAddress"])
        for turn in range(max(gpus.values(), default=0))
        for node in nodes
        if gpus[node["NodeID"]] > turn
    ]
    if not turns:
        raise CliError("the Ray cluster has no GPU: a cluster encode runs one worker per GPU")
    return turns[:jobs]


class RayPool:
    """``workers`` actors (None: one per GPU of the cluster), never more than ``jobs``, on the Ray cluster
    ``connect`` joined. Each actor is pinned to its node and gets a job only once its ``hello`` says the node
    can render (a node that cannot is named in one line and left out); a worker that dies is started again on
    its node while the node lives; a node whose running worker is silent for NODE_SILENT_S is left out."""

    def __init__(
        self, spec: ScriptSpec, workers: int | None, jobs: int, notify: Callable[[str], None]
    ) -> None:
        import ray

        places = _places(workers, jobs)
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        self.options: dict[str, Any] = (
            {"num_gpus": 1, "num_cpus": 0} if gpus else {"num_cpus": cpus / len(places)}
        )
        self.spec, self.notify, self.version = spec, notify, package_version()
        self.actor_class = ray.remote(ScriptActor)
        self.starting: dict[Any, tuple[Any, Place]] = {}
        self.idle_actors: list[tuple[Any, Place]] = []
        self.running: dict[Any, tuple[Any, Place, Job]] = {}
        self.heard: dict[Any, float] = {}  # by running job: when its worker last answered
        self.asked: dict[Any, Any] = {}  # by running job: its open progress question
        self.lost: set[str] = set()  # nodes cut off: no worker goes there again
        self.on_cpu: set[str] = set()  # nodes said to render on the CPU
        self.waiting_since = time.monotonic()
        self.head = parse_address(ray.get_runtime_context().gcs_address)
        self.head_seen = self.head_checked = time.monotonic()
        self.head_answers = True  # at the last check
        for place in places:
            self._start(place)

    def _start(self, place: Place) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # max_concurrency 2: progress() answers while encode() runs.
        actor = self.actor_class.options(
            max_concurrency=2, max_restarts=0, **self.options,
            scheduling_strategy=NodeAffinitySchedulingStrategy(place.node_id, soft=False),
        ).remote(self.spec, self.version)  # fmt: skip
        self.starting[actor.hello.remote()] = (actor, place)

    def idle(self) -> int:
        return len(self.idle_actors)

    def submit(self, job: Job) -> None:
        actor, place = self.idle_actors.pop()
        ref = actor.encode.remote(job)
        self.running[ref] = (actor, place, job)
        self.heard[ref] = time.monotonic()

    def wait(self, timeout: float) -> list[tuple[Job, Result]]:
        """The jobs that ended within ``timeout``; workers that passed their ``hello`` meanwhile become idle. A
        CliError when no worker is left, or none has started within START_TIMEOUT_S."""
        import ray

        refs = [*self.running, *self.starting]
        ready = ray.wait(refs, num_returns=len(refs), timeout=timeout)[0] if refs else []
        finished = []
        for ref in ready:
            if ref in self.starting:
                self._greeted(ref)
                continue
            actor, place, job = self.running.pop(ref)
            self._forget(ref)
            try:
                result = ray.get(ref)
                self.idle_actors.append((actor, place))
            except ray.exceptions.RayError as exc:
                reason = str(exc).strip().splitlines()
                result = Result(None, f"its worker died ({type(exc).__name__})", "worker", tuple(reason[-3:]),
                                node=place.address)  # fmt: skip
                with contextlib.suppress(Exception):
                    ray.kill(actor)
                self._restart(place)
            finished.append((job, result))
        self._check_head()
        if self.head_answers:  # else the silence is the head's (or this machine's), not the nodes'
            finished += self._silent()
        self._check_workers()
        return finished

    def _greeted(self, ref: Any) -> None:
        import ray

        actor, place = self.starting.pop(ref)
        try:
            problem = ray.get(ref)
        except ray.exceptions.RayError as exc:
            problem = self._start_failure(exc)
        if problem is None:
            self._check_device(actor, place)
            self.idle_actors.append((actor, place))
            return
        self.notify(f"Ray node {place.address} refused: {problem}")
        with contextlib.suppress(Exception):
            ray.kill(actor)

    def _start_failure(self, exc: Exception) -> str:
        """Why a worker did not start, in one line: the package missing on its node (Ray cannot even load the
        worker's class there), else the last line of Ray's error."""
        text = str(exc)
        if "No module named 'streamdiffvsr" in text:
            return (
                f"its Python cannot import streamdiffvsr; install {DISTRIBUTION} {self.version} on every node"
            )
        reason = text.strip().splitlines()
        return f"its worker did not start ({reason[-1] if reason else type(exc).__name__})"

    def _check_device(self, actor: Any, place: Place) -> None:
        """One notice per node that declares a GPU (``ray start --num-gpus``) where its worker sees no CUDA
        device: it renders on its CPU, much slower (allowed: a CPU can stand in for a GPU on purpose)."""
        import ray

        if not self.options.get("num_gpus") or place.address in self.on_cpu:
            return
        try:
            devices = ray.get(actor.cuda_devices.remote(), timeout=PROGRESS_TIMEOUT_S)
        except ray.exceptions.RayError:
            return  # a worker that cannot answer fails its job, which says so
        if devices == 0:
            self.on_cpu.add(place.address)
            self.notify(
                f"Ray node {place.address} declares a GPU (ray start --num-gpus) but its worker sees no CUDA "
                "device: it renders on its CPU, much slower"
            )

    def _forget(self, ref: Any) -> None:
        del self.heard[ref]
        self.asked.pop(ref, None)

    def _silent(self) -> list[tuple[Job, Result]]:
        """The running jobs whose worker has not answered for NODE_SILENT_S: their node is taken as cut off
        (its worker may still live and write: only an attempt the orchestrator accepts is moved into place),
        and no job goes there again."""
        import ray

        now, given_up = time.monotonic(), []
        for ref, (actor, place, job) in list(self.running.items()):
            if now - self.heard[ref] < NODE_SILENT_S:
                continue
            del self.running[ref]
            self._forget(ref)
            with contextlib.suppress(Exception):
                ray.kill(actor)
            if place.node_id not in self.lost:
                self.lost.add(place.node_id)
                self.notify(
                    f"Ray node {place.address} has not answered for {NODE_SILENT_S:.0f} s; its segments go to "
                    "the other nodes"
                )
            error = f"its node stopped answering for {NODE_SILENT_S:.0f} s"
            given_up.append((job, Result(None, error, "worker", node=place.address)))
        for actor, place in [pair for pair in self.idle_actors if pair[1].node_id in self.lost]:
            self.idle_actors.remove((actor, place))
            with contextlib.suppress(Exception):
                ray.kill(actor)
        return given_up

    def _restart(self, place: Place) -> None:
        """A worker on ``place`` again if its node still lives; else its jobs go to the other nodes."""
        import ray

        if place.node_id in self.lost:
            return
        if any(node["NodeID"] == place.node_id and node["Alive"] for node in ray.nodes()):
            self._start(place)
        else:
            self.notify(f"Ray node {place.address} is gone; its segments go to the other nodes")

    def _check_workers(self) -> None:
        if self.idle_actors or self.running:
            self.waiting_since = time.monotonic()
        elif not self.starting:
            raise CliError("no node of the Ray cluster can render this encode (see the lines above)")
        elif time.monotonic() - self.waiting_since > START_TIMEOUT_S:
            raise CliError(f"no Ray worker has started within {START_TIMEOUT_S:.0f} s; is the cluster busy?")

    def _check_head(self) -> None:
        """A CliError once the cluster's head has not answered for HEAD_LOST_S (checked every HEAD_CHECK_S):
        without it no worker can be started again, and Ray's nodes give up soon after."""
        now = time.monotonic()
        if now - self.head_checked < HEAD_CHECK_S:
            return
        self.head_checked = now
        try:
            socket.create_connection(self.head, timeout=HEAD_CHECK_S).close()
            self.head_seen, self.head_answers = now, True
        except OSError:
            self.head_answers = False
            if now - self.head_seen > HEAD_LOST_S:
                host, port = self.head
                raise CliError(
                    f"lost the Ray cluster's head at {host}:{port} (no answer for {HEAD_LOST_S:.0f} s); "
                    "finished segments are kept: rerun the same command when a cluster runs to resume"
                ) from None

    def progress(self) -> dict[Segment, int]:
        import ray

        for ref, (actor, _, _) in self.running.items():  # a question still open is not asked again
            self.asked.setdefault(ref, actor.progress.remote())
        questions = list(self.asked.values())
        if not questions:
            return {}
        answered = set(ray.wait(questions, num_returns=len(questions), timeout=PROGRESS_TIMEOUT_S)[0])
        done, now = {}, time.monotonic()
        for ref, question in list(self.asked.items()):
            if question not in answered:
                continue
            del self.asked[ref]
            self.heard[ref] = now  # a late answer counts too: the worker lives
            with contextlib.suppress(ray.exceptions.RayError):
                done[self.running[ref][2].segment] = ray.get(question)
        return done

    def close(self) -> None:
        import ray

        actors = [*self.idle_actors, *self.starting.values(), *((a, p) for a, p, _ in self.running.values())]
        for actor, _ in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        ray.shutdown()
