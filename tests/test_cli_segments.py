"""Segmented encodes end to end: real render workers, ffmpeg, Ray; the tiny checkpoint on 32x24 clips, ffv1 (lossless)
so that decoded frames can be compared with the linear encode's, bit for bit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamdiffvsr.cli.segments.jobs import Segment
from streamdiffvsr.cli.segments.plan import split
from tests.processes import own_processes
from tests.test_cli_encode import CLI, ffmpeg, processes_mentioning

SCENE_FRAMES = 4
FPS = 24
LOSSLESS = ["--set", "flow=dis", "--set", "steps=1", "--set", "codec=ffv1", "--quiet"]
SEGMENTED = ["--set", f"segment.min_frames={SCENE_FRAMES}"]
CHEAP_MP4 = ["--set", "flow=dis", "--set", "steps=1", "--set", "x265_preset=ultrafast", "--quiet"]
SEGMENTS = 4
RAY_MARKERS = ("ray::", "sdv-ray-", "/ray/core/src/ray/", "ray/dashboard", "ray/_private")


def make_scenes(path: Path, frequency: int = 440) -> Path:
    """Four distinct scenes of SCENE_FRAMES frames (three cuts) and a sine audio track."""
    seconds = f"{SCENE_FRAMES / FPS:.6f}"
    sources = ["color=c=red:", "testsrc=", "color=c=blue:", "testsrc2="]
    args: list[str] = []
    for source in sources:
        args += ["-f", "lavfi", "-i", f"{source}size=32x24:rate={FPS}:duration={seconds}"]
    args += ["-f", "lavfi", "-i", f"sine=frequency={frequency}:duration={4 * SCENE_FRAMES / FPS:.6f}"]
    ffmpeg(
        *args, "-filter_complex", "[0][1][2][3]concat=n=4:v=1:a=0[v]", "-map", "[v]", "-map", "4",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


def framemd5(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line for line in out.splitlines() if not line.startswith("#")]


def encode(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(CLI), "encode", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def ray_processes() -> set[int]:
    """This test run's Ray processes (never another user's or another test run's)."""
    return {pid for pid, cmdline in own_processes().items() if any(m in cmdline for m in RAY_MARKERS)}


def assert_none_left(folder: Path, ray_before: set[int]) -> None:
    """No child of ours (render workers, ffmpeg, Ray's daemons and workers) outlives the run."""
    deadline = time.monotonic() + 20
    while (processes_mentioning(str(folder)) or ray_processes() - ray_before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(folder)) == []
    assert ray_processes() - ray_before == set()


def kill_after_first_segment(args: list[str], folder: Path, wrapper: list[str] | None = None) -> None:
    """Start an encode (under ``wrapper``, e.g. taskset) and SIGKILL it once its manifest records a finished
    segment."""
    command = [*(wrapper or []), str(CLI), "encode", *args]
    cli = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = folder / "manifest.json"
    deadline = time.monotonic() + 300
    try:
        while not (manifest.is_file() and json.loads(manifest.read_text())["done"]):
            assert cli.poll() is None and time.monotonic() < deadline, cli.stderr.read()
            time.sleep(0.05)
    finally:
        cli.kill()
        cli.wait()


def one_worker_split(source: Path, output: Path, model: Path) -> list[str]:
    """encode's arguments for a lossless split of ``source`` into ``output`` on one local worker."""
    return [str(source), str(output), "--model", str(model), *LOSSLESS, *SEGMENTED, "--workers", "1"]


@pytest.fixture(scope="module")
def linear(scenes: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The linear encode's decoded frames (too short to split at the default segment length)."""
    output = tmp_path_factory.mktemp("linear") / "linear.mkv"
    encode(str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS)
    return framemd5(output)


def test_split_starts_segments_at_chain_starts_of_at_least_min_frames() -> None:
    assert split([0, 3, 10, 12, 20, 28], 0, 29, 8) == [
        Segment(0, 0, 9),
        Segment(1, 10, 19),
        Segment(2, 20, 29),
    ]
    assert split([0, 3, 10, 12, 20, 25], 0, 29, 8) == [
        Segment(0, 0, 9),
        Segment(1, 10, 19),
        Segment(2, 20, 29),
    ]
    assert split([0, 10], 2, 15, 8) == [Segment(0, 2, 15)]  # the tail would be shorter than 8
    assert split([], 0, 5, 100) == [Segment(0, 0, 5)]


@pytest.mark.slow
def test_resume_after_sigkill_refuses_other_settings_and_restarts(
    scenes: Path, tiny_checkpoint: Path, linear: list[str], tmp_path: Path
) -> None:
    output = tmp_path / "out.mkv"
    folder = tmp_path / ".out.mkv.segments"
    args = one_worker_split(scenes, output, tiny_checkpoint)
    kill_after_first_segment(args, folder)
    assert_none_left(tmp_path, ray_processes())
    assert not output.exists()

    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    refused = encode(*args, "--set", "seed=1", check=False)
    assert refused.returncode == 2
    error = refused.stderr.splitlines()[-1]
    assert (
        error.startswith("streamdiffvsr: error: ") and "seed was 0, now 1" in error and "--restart" in error
    )
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before

    finished = sorted(folder.glob("segment-?????.nut"))
    damaged = bytearray(finished[0].read_bytes())  # bytes zeroed inside a finished segment
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = bytes(64)
    finished[0].write_bytes(bytes(damaged))
    resumed = encode(*args)
    assert (
        "segment 1/4 (frames 0-3) is rendered again: its file is not the one that was verified"
        in resumed.stderr
    )
    done = (
        int(resumed.stderr.split("resuming: ")[1].split(" of ")[0]) if "resuming: " in resumed.stderr else 0
    )
    assert done < SEGMENTS - 1
    assert resumed.stderr.count(" done in ") == SEGMENTS - done  # finished segments are not rendered again
    assert framemd5(output) == linear
    assert {p.name for p in tmp_path.iterdir()} == {"out.mkv"}

    output.unlink()
    ray_before = ray_processes()
    cli = subprocess.Popen([str(CLI), "encode", *args[:-1], "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=fresh_home(tmp_path))  # fmt: skip
    try:  # SIGTERM with two Ray workers running stops everything, as Ctrl-C does
        wait_for_actor(cli)
        cli.send_signal(signal.SIGTERM)
        _, err = cli.communicate(timeout=120)
    finally:
        cli.kill()
    assert cli.returncode == 130 and err.rstrip().endswith("streamdiffvsr: interrupted"), err
    assert_none_left(tmp_path, ray_before)
    restarted = encode(*args, "--restart")
    assert "resuming" not in restarted.stderr and restarted.stderr.count(" done in ") == SEGMENTS
    assert "--restart: removed the earlier run's work (" in restarted.stderr
    assert framemd5(output) == linear
    assert_none_left(tmp_path, set())


@pytest.mark.slow
def test_a_resume_refuses_a_source_whose_content_changed_with_its_size_and_time(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The source rewritten in place, its size kept and its time put back (as ``cp --preserve`` or
    ``rsync -t`` can leave it): the resume must not join the old segments with frames of the new content."""
    source = make_scenes(tmp_path / "scenes.mkv")
    output = tmp_path / "out.mkv"
    folder = tmp_path / ".out.mkv.segments"
    args = one_worker_split(source, output, tiny_checkpoint)
    kill_after_first_segment(args, folder)
    before = source.stat()
    other = make_scenes(tmp_path / "other.mkv", frequency=880).read_bytes()  # another tone
    source.write_bytes(other[: before.st_size].ljust(before.st_size, b"\0"))  # Matroska skips trailing zeros
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (source.stat().st_size, source.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    work = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    refused = encode(*args, check=False)
    assert refused.returncode == 2, refused.stderr
    last = refused.stderr.splitlines()[-1]
    assert "holds segments of another encode (content_sha256 was " in last and "--restart" in last
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == work and not output.exists()


@pytest.mark.slow
def test_ray_workers_resume_with_another_count_survive_ctrl_c_and_a_killed_worker(
    scenes: Path, tiny_checkpoint: Path, linear: list[str], tmp_path: Path
) -> None:
    """One worker killed, resumed on two Ray workers, interrupted (SIGINT), resumed with a worker killed
    mid-segment: the frames equal the linear encode's; nothing is left running; HOME is fresh (no Ray token)."""
    ray_before, ray_folders = ray_processes(), set(Path("/tmp").glob("sdv-ray-*"))
    output = tmp_path / "out.mkv"
    folder = tmp_path / ".out.mkv.segments"
    args = [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED]
    kill_after_first_segment([*args, "--workers", "1"], folder)
    assert_none_left(tmp_path, ray_before)

    cli = subprocess.Popen([str(CLI), "encode", *args, "--workers", "2"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=fresh_home(tmp_path))  # fmt: skip
    try:  # Ctrl-C while the Ray workers run (loading the script and model, before a segment is done)
        wait_for_actor(cli)
        assert_loopback_only()
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=120)
    finally:
        cli.kill()
    assert cli.returncode == 130 and err.rstrip().endswith("streamdiffvsr: interrupted"), err
    assert "resuming: 1 of 4" in err
    assert_none_left(tmp_path, ray_before)
    assert set(Path("/tmp").glob("sdv-ray-*")) <= ray_folders  # the local instance's folder is gone too

    cli = subprocess.Popen([str(CLI), "encode", *args, "--workers", "2"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=fresh_home(tmp_path))  # fmt: skip
    try:  # kill a Ray worker that holds a segment
        os.kill(wait_for_actor(cli, holding_a_segment=True), signal.SIGKILL)
        _, err = cli.communicate(timeout=600)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    assert "resuming: 1 of 4" in err and "its worker died" in err and "trying again" in err
    assert framemd5(output) == linear
    assert_none_left(tmp_path, ray_before)


def wait_for_actor(cli: subprocess.Popen, holding_a_segment: bool = False) -> int:
    """The pid of a render worker (Ray actor) of the running encode, once there is one (with
    ``holding_a_segment``: one whose ffmpeg runs; a worker is given a segment only once it has started)."""
    deadline = time.monotonic() + 300
    while True:
        processes = own_processes()
        actors = {pid for pid, cmdline in processes.items() if "ray::ScriptActor" in cmdline}
        if holding_a_segment:
            actors &= {_parent(pid) for pid, cmdline in processes.items()
                       if Path(cmdline.partition(" ")[0]).name == "ffmpeg"}  # fmt: skip
        if actors:
            return min(actors)
        assert cli.poll() is None and time.monotonic() < deadline, cli.communicate()
        time.sleep(0.02)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def fresh_home(tmp_path: Path) -> dict[str, str]:
    """The environment with a new, empty home folder: nothing an earlier run left there can help."""
    home = tmp_path / f"home-{time.monotonic_ns()}"
    home.mkdir()
    return {**os.environ, "HOME": str(home)}


@pytest.mark.slow
def test_segments_run_on_a_ray_cluster(
    scenes: Path, tiny_checkpoint: Path, linear: list[str], tmp_path: Path
) -> None:
    """A cluster started with token auth (the token only in the environment): --ray with the token works;
    without it, with a wrong one (no Ray log lines) and at an address where nothing listens, one line."""
    ray_before = ray_processes()
    ray = Path(sys.executable).parent / "ray"
    temp = Path(f"/tmp/sdv-ray-test-{os.getpid()}")  # short: Ray's socket paths must fit in 107 bytes
    with socket_port() as port:
        pass
    token = os.urandom(16).hex()
    env = {**fresh_home(tmp_path), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": token}  # fmt: skip
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--num-gpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert head.wait(300) == 0
        assert_loopback_only()
        output = tmp_path / "out.mkv"
        args = [str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED]
        tokenless = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}
        refused = run_cli(["encode", *args, "--ray", f"127.0.0.1:{port}"], tokenless)
        assert refused.returncode == 2 and "no token for the Ray cluster" in refused.stderr.splitlines()[-1]
        began = time.monotonic()  # Ray itself retries a refused token for 20 s, logging each try
        wrong = run_cli(["encode", *args, "--ray", f"127.0.0.1:{port}"], {**env, "RAY_AUTH_TOKEN": "0" * 32})
        assert time.monotonic() - began < 10
        lines = wrong.stderr.splitlines()  # the preflight's notices, then the one line (no Ray log lines)
        assert wrong.returncode == 2 and all(line.startswith("streamdiffvsr: ") for line in lines), (
            wrong.stderr
        )
        assert lines[-1] == (
            f"streamdiffvsr: error: the Ray cluster at 127.0.0.1:{port} refuses the token from $RAY_AUTH_TOKEN: it "
            "is not that cluster's; set RAY_AUTH_TOKEN to the token `ray get-auth-token` prints on the cluster's "
            "head"
        )
        result = run_cli(["encode", *args, "--ray", f"127.0.0.1:{port}"], env)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count(" done in ") == SEGMENTS and "(127.0.0.1)" in result.stderr
        assert framemd5(output) == linear
    finally:
        stop_group(head.pid)  # every process `ray start` left runs in its session
        subprocess.run(["rm", "-rf", str(temp)], check=False)
    assert_none_left(tmp_path, ray_before)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600, env=env)


def assert_loopback_only() -> None:
    """Every TCP socket Ray's processes listen on is bound to 127.0.0.1."""
    listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False).stdout
    ray_lines = [
        line for line in listening.splitlines() if any(name in line for name in ("gcs_server", "raylet"))
    ]
    assert ray_lines, listening
    hosts = {line: line.split()[3].rpartition(":")[0].strip("[]") for line in ray_lines}
    elsewhere = [line for line, host in hosts.items() if host not in ("127.0.0.1", "::ffff:127.0.0.1")]
    assert elsewhere == []


@pytest.mark.slow
def test_ray_address_where_nothing_listens_fails_fast_in_one_line(scenes: Path, tmp_path: Path) -> None:
    with socket_port() as port:
        pass
    began = time.monotonic()
    result = run_cli(["encode", str(scenes), str(tmp_path / "out.mkv"), "--ray", f"127.0.0.1:{port}"],
                     fresh_home(tmp_path))  # fmt: skip
    assert time.monotonic() - began < 30
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        "streamdiffvsr: error: no Ray cluster answers at 127.0.0.1:"
    )
    with http_server() as http_port:  # something listens, but it is no Ray cluster
        began = time.monotonic()
        not_ray = run_cli(["encode", str(scenes), str(tmp_path / "out.mkv"), "--ray", f"127.0.0.1:{http_port}"],
                          {**fresh_home(tmp_path), "RAY_AUTH_TOKEN": "x" * 32})  # fmt: skip
        assert time.monotonic() - began < 15  # Ray itself would retry against it for its whole timeout (25 s)
    assert not_ray.returncode == 2, not_ray.stderr
    assert not_ray.stderr.splitlines()[-1] == (
        f"streamdiffvsr: error: 127.0.0.1:{http_port} answers, but not as a Ray cluster's head (gRPC); is it "
        "another service or a dashboard's port? --ray takes the address 'ray start --head' prints, port 6379 "
        "unless it was given another"
    )
    bogus = run_cli(
        ["encode", str(scenes), str(tmp_path / "out.mkv"), "--ray", "bogus"], fresh_home(tmp_path)
    )
    assert bogus.returncode == 2 and "is not HOST:PORT" in bogus.stderr
    assert {p.name for p in tmp_path.iterdir()} == {
        p.name for p in tmp_path.iterdir() if p.name.startswith("home-")
    }


def stop_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


class socket_port:
    """A free loopback port (closed again before use)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("[]", "is damaged (not a JSON object)"),
        ("null", "is damaged (not a JSON object)"),
        ('{"version": 3, "fingerprint": {}}', "holds segments of another encode"),
        ('{"version": 2, "segments": []}', "was written by another version of streamdiffvsr"),
        ("{", "cannot read"),
    ],
)
def test_a_damaged_or_foreign_manifest_is_one_line(
    scenes: Path, tmp_path: Path, manifest: str, expected: str
) -> None:
    folder = tmp_path / ".out.mkv.segments"
    folder.mkdir()
    (folder / "manifest.json").write_text(manifest)
    result = encode(
        str(scenes), str(tmp_path / "out.mkv"), "--model", "tiny", *LOSSLESS, *SEGMENTED, check=False
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("streamdiffvsr: error: ") and expected in last and "--restart" in last
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_manifest_with_bad_entries_is_refused(scenes: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A manifest of this encode whose segment list is broken: refused in one line, nothing deleted."""
    output = tmp_path / "out.mkv"
    folder = tmp_path / ".out.mkv.segments"
    args = one_worker_split(scenes, output, tiny_checkpoint)
    kill_after_first_segment(args, folder)
    data = json.loads((folder / "manifest.json").read_text())
    for segments in ([], [[0, "3"], [4, 15]], [[0, 3], [8, 15]], [[0, 3], [4, 7]]):  # the last one: shortened
        (folder / "manifest.json").write_text(json.dumps({**data, "segments": segments}))
        result = encode(*args, check=False)
        assert result.returncode == 2 and "is damaged" in result.stderr.splitlines()[-1], result.stderr
    assert any(folder.glob("segment-?????.nut"))


@pytest.mark.slow
def test_a_linked_work_folder_is_refused_not_followed(scenes: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "users-folder"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    (tmp_path / ".out.mkv.segments").symlink_to(elsewhere)
    result = encode(str(scenes), str(tmp_path / "out.mkv"), "--model", "tiny", *LOSSLESS, *SEGMENTED, "--restart",
                    check=False)  # fmt: skip
    assert result.returncode == 2
    assert "is a symbolic link; remove it" in result.stderr.splitlines()[-1]
    assert (elsewhere / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.slow
def test_ray_address_in_the_environment_yields_to_an_explicit_workers(scenes: Path, tmp_path: Path) -> None:
    env = {**fresh_home(tmp_path), "RAY_ADDRESS": "127.0.0.1:9"}
    output = tmp_path / "out.mkv"
    result = run_cli(
        ["encode", str(scenes), str(output), "--model", "tiny", *LOSSLESS, "--workers", "1"], env
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_segmented_mp4_keeps_exact_timestamps(scenes: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Segments are joined without rounding the frame times to milliseconds (23.976 fps in mp4's 1/24000)."""
    ntsc = tmp_path / "ntsc.mp4"  # four scenes of SCENE_FRAMES frames at 24000/1001 fps
    sources = ["color=c=red:", "testsrc=", "color=c=blue:", "testsrc2="]
    inputs = [arg for s in sources for arg in ("-f", "lavfi", "-i", f"{s}size=32x24:rate=24000/1001")]
    trims = "".join(f"[{i}]trim=end_frame={SCENE_FRAMES}[v{i}];" for i in range(4))
    ffmpeg(*inputs, "-filter_complex", f"{trims}[v0][v1][v2][v3]concat=n=4:v=1:a=0[v]", "-map", "[v]",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(ntsc))  # fmt: skip
    output = tmp_path / "out.mp4"
    args = [str(ntsc), str(output), "--model", str(tiny_checkpoint), *CHEAP_MP4, *SEGMENTED]
    result = encode(*args)
    assert result.stderr.count(" done in ") == SEGMENTS
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts:stream=time_base",
         "-of", "json", str(output)], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    assert data["streams"][0]["time_base"] == "1/24000"
    assert sorted(int(p["pts"]) for p in data["packets"]) == [1001 * k for k in range(4 * SCENE_FRAMES)]


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_estimate_and_writes_nothing(scenes: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.mkv"
    result = encode(str(scenes), str(output), "--model", "tiny", *LOSSLESS, *SEGMENTED, "--dry-run")
    lines = result.stdout.splitlines()
    assert lines[0] == "plan: 4 segments"
    assert lines[1:5] == [f"  segment {i + 1}/4 (frames {4 * i}-{4 * i + 3})" for i in range(4)]
    assert any(line.startswith("estimate of the encode on ") for line in lines)  # the device it plans for
    assert "  plan       4 segments on 1 worker" in lines
    assert list(tmp_path.iterdir()) == []


def test_the_progress_line_shows_the_eta_its_encode_sets() -> None:
    """The line's ETA is the encode's (``Progress.eta``), not frames left over the speed; that the encode sets it
    from its plan: tests/test_retry_policy.py::test_the_eta_counts_what_is_left_on_the_workers_there_are."""
    from streamdiffvsr.cli.progress import Progress
    from streamdiffvsr.cli.segments.estimate import Estimate

    progress = Progress(enabled=False)
    progress.update(10, 100)
    progress._first = (time.monotonic() - 10, 0)  # 10 frames in 10 s: 1 frame/s overall
    progress.eta = lambda fps: (
        Estimate((45, 45), 2 / fps, 2, 1.0).wall_seconds
    )  # two workers, two segments left
    assert progress.text().endswith("ETA 0:01:31")  # 1 s start + 45 frames at 2 s each, not 90 frames at 1 s


@contextlib.contextmanager
def http_server() -> Iterator[int]:
    """A plain HTTP server on a loopback port (stopped at the end)."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_users_vpy_is_split_exactly_like_the_generated_script(
    scenes: Path, tiny_checkpoint: Path, linear: list[str], tmp_path: Path
) -> None:
    """--vpy with the script `streamdiffvsr script` prints (same engine settings): split at the same chain
    starts, the same frames as the generated script's one-segment encode."""
    printed = subprocess.run([str(CLI), "script", "--set", "flow=dis", "--set", "steps=1"], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    script = tmp_path / "mine.vpy"
    script.write_text(printed)
    output = tmp_path / "out.mkv"
    result = encode(str(scenes), str(output), "--vpy", str(script), "--model", str(tiny_checkpoint), *LOSSLESS,
                    *SEGMENTED)  # fmt: skip
    assert result.stderr.count(" done in ") == SEGMENTS
    assert framemd5(output) == linear


def test_the_content_digest_of_a_large_source_sees_its_first_and_last_bytes(tmp_path: Path) -> None:
    """Past WHOLE_BYTES the digest samples blocks; the first and the last block are among them."""
    from streamdiffvsr.cli.segments.manifest import SAMPLE_BYTES, WHOLE_BYTES, source_fingerprint

    source = tmp_path / "large.mkv"
    with source.open("wb") as handle:  # sparse: cheap to make and to read
        handle.truncate(WHOLE_BYTES + (5 << 20))
    digests = {source_fingerprint(source)["content_sha256"]}
    for offset in (0, source.stat().st_size - 1, SAMPLE_BYTES + (5 << 20)):  # the last: in the 6th block
        with source.open("r+b") as handle:
            handle.seek(offset)
            handle.write(b"\1")
        digests.add(source_fingerprint(source)["content_sha256"])
    assert len(digests) == 4


@pytest.mark.slow
def test_each_evaluated_script_plans_with_its_own_filter(
    scenes: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A process that evaluates a second script (a worker that moves to another file) splits it at that
    script's own chain starts: the first script's filter, still alive, is not the second's."""
    from streamdiffvsr.cli.media.vpy import generate_script
    from streamdiffvsr.cli.segments.jobs import ScriptSpec
    from streamdiffvsr.cli.segments.worker import EvaluatedScript
    from streamdiffvsr.cli.settings.presets import load_settings

    script = tmp_path / "generated.vpy"
    script.write_text(generate_script(load_settings(None, ["flow=dis", "steps=1"])))
    spec = ScriptSpec(script, {"src": str(scenes), "model": str(tiny_checkpoint)}, 1)
    first, second = EvaluatedScript(spec), EvaluatedScript(spec)
    cuts = [SCENE_FRAMES * scene for scene in range(4)]
    assert first.chain_starts(4 * SCENE_FRAMES - 1) == second.chain_starts(4 * SCENE_FRAMES - 1) == cuts
