"""Jobs on Ray: a local instance (``--workers N``, loopback only, its own token) or an existing cluster
(``--ray ADDRESS``, the cluster's token). Each worker is a Ray actor holding a ``Renderer``: the script and
model are loaded once per actor (one GPU each, or a share of this machine's cores), and the actor renders job
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
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.segments.ray_local import LOOPBACK_ENV
from streamdiffvsr.cli.segments.worker import Job, Renderer, Result, ScriptSpec

CONNECT_TIMEOUT_S = 25.0  # a whole --ray failure stays within 30 s
TCP_TIMEOUT_S = 5.0
START_TIMEOUT_S = 120.0
PROGRESS_TIMEOUT_S = 2.0
TOKEN_FILE = Path("~/.ray/auth_token")


class RendererActor:
    """What a Ray worker process holds: the evaluated script; ``progress`` answers while ``render`` runs."""

    def __init__(self, spec: ScriptSpec) -> None:
        self.renderer = Renderer(spec)
        self.done = 0

    def render(self, job: Job) -> Result:
        import ray

        self.done = 0
        result = self.renderer.render(job, self._report)
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
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or TOKEN_FILE).expanduser()
    with contextlib.suppress(OSError):
        return path.read_text().strip() or None
    return None


def _check_listening(address: str) -> None:
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=TCP_TIMEOUT_S).close()
    except OSError as exc:
        raise CliError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); is its head running?"
        ) from None


def _init(address: str) -> None:
    """ray.init, given CONNECT_TIMEOUT_S: an address that is not a Ray head makes Ray retry for minutes."""
    import ray

    failure: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=True)
        except BaseException as exc:  # reported by the caller
            failure.append(exc)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if thread.is_alive():
        raise CliError(f"{address} does not answer as a Ray cluster within {CONNECT_TIMEOUT_S:.0f} s")
    if failure:
        reason = str(failure[0]).strip().splitlines()
        raise CliError(
            f"cannot join the Ray cluster at {address}: {reason[0] if reason else type(failure[0]).__name__}"
        )


def check_cluster(address: str) -> None:
    """Before anything else runs, join the cluster at ``address``: something listens there, this driver has
    the cluster's token, it answers as a Ray cluster within CONNECT_TIMEOUT_S, and it has a GPU (a worker runs
    on each). Each failure is a one-line CliError."""
    _check_listening(address)
    if os.environ.get("RAY_AUTH_MODE", "token") == "token":
        token = cluster_token()
        if token is None:
            raise CliError(
                f"no token for the Ray cluster at {address}: looked in $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH "
                f"and {TOKEN_FILE}; set RAY_AUTH_TOKEN to the cluster's token"
            )
        os.environ.update({"RAY_AUTH_TOKEN": token, "RAY_AUTH_MODE": "token"})
    connect(address, local=False)
    import ray

    if not ray.cluster_resources().get("GPU", 0):
        ray.shutdown()
        raise CliError(f"the Ray cluster at {address} has no GPU: a cluster encode runs one worker per GPU")


def connect(address: str, local: bool) -> None:
    """Join the Ray cluster at ``address`` with token authentication (never switched off here); a cluster
    ``check_cluster`` has seen, or the local instance."""
    if local or parse_address(address)[0] in ("127.0.0.1", "localhost", "::1"):
        for name, value in LOOPBACK_ENV.items():  # a cluster on loopback: this driver must be reachable there
            os.environ.setdefault(name, value)
    previous = signal.getsignal(signal.SIGTERM)
    _init(address)
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


class RayPool:
    """``workers`` actors (None: one per GPU of the cluster), never more than ``jobs``, on the Ray cluster
    ``connect`` joined."""

    def __init__(self, spec: ScriptSpec, workers: int | None, jobs: int) -> None:
        import ray

        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
        if workers is None and gpus == 0:
            raise CliError("the Ray cluster has no GPU: a cluster encode runs one worker per GPU")
        count = min(workers or gpus, jobs)
        self.options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 0} if gpus else {"num_cpus": cpus / count}
        self.spec = spec
        self.actor_class = ray.remote(RendererActor)
        self.idle_actors = [self._actor() for _ in range(count)]
        self.running: dict[Any, tuple[Any, Job]] = {}

    def _actor(self) -> Any:
        # max_concurrency 2: progress() answers while render() runs.
        return self.actor_class.options(max_concurrency=2, max_restarts=0, **self.options).remote(self.spec)

    def idle(self) -> int:
        return len(self.idle_actors)

    def submit(self, job: Job) -> None:
        actor = self.idle_actors.pop()
        self.running[actor.render.remote(job)] = (actor, job)

    def wait(self, timeout: float) -> list[tuple[Job, Result]]:
        import ray

        if not self.running:
            return []
        ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout)
        finished = []
        for ref in ready:
            actor, job = self.running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                reason = str(exc).strip().splitlines()
                result = Result(None, f"its worker died ({type(exc).__name__})", "worker", tuple(reason[-3:]))
                with contextlib.suppress(Exception):
                    ray.kill(actor)
                actor = self._actor()
            self.idle_actors.append(actor)
            finished.append((job, result))
        return finished

    def progress(self) -> dict[int, int]:
        import ray

        refs = {job.segment.index: actor.progress.remote() for actor, job in self.running.values()}
        try:
            return dict(zip(refs, ray.get(list(refs.values()), timeout=PROGRESS_TIMEOUT_S), strict=True))
        except ray.exceptions.RayError:
            return {}

    def close(self) -> None:
        import ray

        for actor in [*self.idle_actors, *(actor for actor, _ in self.running.values())]:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        ray.shutdown()
