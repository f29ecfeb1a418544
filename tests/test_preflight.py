"""The preflight in-process (no worker, no render): the request it builds from the arguments, and each refusal
in one line. The end-to-end tests (test_cli_*) show that the command prints these and writes nothing."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.main import build_parser, main
from streamdiffvsr.cli.media.vpy import generate_script
from streamdiffvsr.cli.preflight.build import encode_request, preview_request
from streamdiffvsr.cli.preflight.checks import CHECKS
from streamdiffvsr.cli.preflight.draft import ENCODE, PREVIEW
from streamdiffvsr.cli.preflight.request import Parallel, Request
from streamdiffvsr.cli.settings.presets import load_settings

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

FRAMES = 8


def make_clip(path: Path, size: str = "32x24") -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24",
                    "-frames:v", str(FRAMES), "-c:v", "ffv1", str(path)], check=True)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("preflight") / "in.mkv")


def encode(*argv: str, notices: list[str] | None = None) -> Request:
    args = build_parser().parse_args(["encode", *argv])
    return encode_request(args, (notices if notices is not None else []).append)


def preview(*argv: str) -> Request:
    args = build_parser().parse_args(["preview", *argv])
    settings = load_settings(args.preset, args.set)
    return preview_request(args, [settings], (args.output,), [].append)


def refusal(build, *argv: str) -> str:
    with pytest.raises(CliError) as refused:
        build(*argv)
    return str(refused.value)


def test_the_request_holds_absolute_paths_and_what_the_checks_found(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(clip, "in.mkv")
    notices: list[str] = []
    request = encode("in.mkv", "out.mkv", "--model", "nano", "--start", "2", "--end", "5", "--workers", "2",
                     "--set", "steps=1", notices=notices)  # fmt: skip
    assert (request.source, request.output) == (tmp_path / "in.mkv", tmp_path / "out.mkv")
    assert (request.start, request.end, request.parallel, request.size) == (2, 5, Parallel(2), (32, 24))
    assert request.info.frame_count == FRAMES and request.model is not None and request.vpy is None
    assert request.script.args == {"src": str(tmp_path / "in.mkv"), "model": str(request.model.path)}
    assert request.script.path.parent == tmp_path and request.script.path.name.startswith(".out.partial-")
    assert request.script_text == generate_script(request.settings) and request.settings["steps"] == 1
    assert request.commands is not None and request.commands.trim is not None
    assert notices[0] == "model: nano (a small CPU-trained preview model, not the official weights)"
    assert any("trained for 4 steps" in notice for notice in notices)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]  # the orchestrator writes the script
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.start = 0  # type: ignore[misc]


def test_the_users_script_needs_no_model(clip: Path, tmp_path: Path) -> None:
    script = tmp_path / "mine.vpy"
    script.write_text("# mine\n")
    notices: list[str] = []
    request = encode(str(clip), str(tmp_path / "out.mkv"), "--vpy", str(script), "--set", "steps=2",
                     notices=notices)  # fmt: skip
    assert (request.vpy, request.script.path, request.script_text, request.model) == (
        script,
        script,
        "# mine\n",
        None,
    )
    assert request.script.args == {"src": str(clip)}
    assert notices == ["--vpy: the filter options come from your script; ignoring --set steps"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "5", "--end", "2"], "--end must be >= --start (got --start 5 --end 2)"),
        (["--start", str(FRAMES)], f"--start {FRAMES} is beyond the end of INPUT: it has {FRAMES} frames (0 to 7)"),
        (["--end", "20"], f"--end 20 is beyond the end of INPUT: it has {FRAMES} frames (0 to 7)"),
        (["--workers", "2", "--ray", "127.0.0.1:1"], "--workers and --ray exclude each other"),
        (["--set", "flow_weights=/nonexistent.safetensors"], "engine.flow_weights /nonexistent.safetensors is not a file"),
        (["--set", "x265_params=no-such-option=1"], "encoder.x265_params 'no-such-option=1': "),
        (["--vpy", "/nonexistent.vpy"], "--vpy /nonexistent.vpy is not a file"),
    ],
)  # fmt: skip
def test_each_refusal_is_one_line(argv: list[str], message: str, clip: Path, tmp_path: Path) -> None:
    found = refusal(encode, str(clip), str(tmp_path / "out.mkv"), "--model", "nano", *argv)
    assert message in found and "\n" not in found


def test_outputs_and_containers_are_refused(clip: Path, tmp_path: Path) -> None:
    (tmp_path / "exists.mkv").write_text("keep me")
    assert refusal(encode, str(clip), str(tmp_path / "exists.mkv")) == (
        f"OUTPUT {tmp_path}/exists.mkv exists; pass --overwrite to replace it"
    )
    assert (
        refusal(encode, str(clip), str(tmp_path / "out.avi"))
        == "OUTPUT must end in .mkv or .mp4 (got 'out.avi')"
    )
    assert refusal(encode, str(clip), str(tmp_path / "out.mp4"), "--set", "codec=ffv1") == (
        "encoder.codec ffv1 cannot go into .mp4; write an .mkv OUTPUT"
    )
    assert (
        refusal(encode, str(tmp_path / "none.mkv"), str(tmp_path / "o.mkv"))
        == f"INPUT {tmp_path}/none.mkv does not exist"
    )
    assert (
        refusal(preview, str(clip), str(tmp_path / "out.jpg"))
        == f"OUTPUT {tmp_path}/out.jpg must be a .png picture"
    )


def test_a_frame_too_small_for_the_model_is_refused_unless_the_script_is_the_users(tmp_path: Path) -> None:
    small = make_clip(tmp_path / "small.mkv", "16x12")
    assert refusal(encode, str(small), str(tmp_path / "out.mkv")).startswith(
        "INPUT is 16x12; the model needs each side to be at least 16 pixels"
    )
    script = tmp_path / "mine.vpy"
    script.write_text("# mine\n")
    assert encode(str(small), str(tmp_path / "out.mkv"), "--vpy", str(script)).size == (16, 12)


def test_preview_takes_its_checks_and_its_moments(clip: Path, tmp_path: Path) -> None:
    request = preview(str(clip), str(tmp_path / "out.png"), "--model", "nano", "--at", "5,2")
    assert request.at == (2, 5) and request.commands is None and request.model is not None
    assert refusal(preview, str(clip), str(tmp_path / "out.png"), "--at", "8") == (
        f"--at 8 is beyond the end of INPUT: it has {FRAMES} frames (0 to 7)"
    )


def test_the_checks_run_in_one_order_for_both_commands() -> None:
    names = [function.__name__ for function, _ in CHECKS]
    assert len(names) == len(set(names))
    shared = [
        name for name, (_, commands) in zip(names, CHECKS, strict=True) if {ENCODE, PREVIEW} <= commands
    ]
    assert shared[:2] == ["check_input", "check_outputs"]  # what the user gave comes before any tool runs
    assert names.index("read_source") < names.index("check_range") < names.index("choose_the_model")


def test_a_refused_encode_leaves_even_a_dead_runs_leftovers_alone(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leftover = tmp_path / ".out.partial-3999999.mkv"  # a PID below Linux's largest, not running
    leftover.write_bytes(b"a killed run's")
    assert main(["encode", str(clip), str(tmp_path / "out.mkv"), "--start", str(FRAMES)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert leftover.read_bytes() == b"a killed run's"  # the orchestrator removes it, when an encode starts


def test_paths_are_refused_before_any_tool_runs(clip: Path, tmp_path: Path) -> None:
    assert refusal(encode, str(tmp_path), str(tmp_path / "out.mkv")) == f"INPUT {tmp_path} is not a file"
    assert refusal(encode, str(clip), str(clip), "--overwrite") == "OUTPUT is the same file as INPUT"
    assert refusal(encode, str(clip), str(tmp_path / "no" / "out.mkv")) == (
        f"the folder of OUTPUT ({tmp_path}/no) does not exist"
    )
    assert refusal(preview, str(clip), str(tmp_path)) == f"OUTPUT {tmp_path} must be a .png picture"


def test_what_ffprobe_finds_in_the_source_is_refused(tmp_path: Path) -> None:
    vfr, pcm = tmp_path / "vfr.mkv", tmp_path / "pcm.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=1", "-vf",
                    "select='lt(t,0.5)+not(mod(n,3))'", "-fps_mode", "vfr", "-c:v", "ffv1", str(vfr)], check=True)  # fmt: skip
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24:duration=0.25",
                    "-f", "lavfi", "-i", "sine=duration=0.25", "-c:v", "ffv1", "-c:a", "pcm_s16le", str(pcm)],
                   check=True)  # fmt: skip
    assert refusal(encode, str(vfr), str(tmp_path / "out.mkv")).startswith(
        "INPUT has a variable frame rate (frames last 41.0 to 125.0 ms), which the encode cannot keep"
    )
    assert refusal(encode, str(pcm), str(tmp_path / "out.mp4")).startswith(
        "INPUT's audio stream 1 (pcm_s16le) cannot be copied into .mp4; write an .mkv OUTPUT or re-encode the audio"
    )


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64x48 4:2:0, 30000/1001 fps, 30 frames, flagged progressive (as a telecined film often is)."""
    path = tmp_path_factory.mktemp("film") / "film.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30000/1001", "-frames:v",
                    "30", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "crop=1,0,1,0"], "input.crop 1,0,1,0: left 1, right 1 do not fit the source's chroma subsampling "
                                    "(4:2:0); use multiples of 2 for left/right and 2 for top/bottom"),
        (["--set", "crop=0,16,0,24"], "input.crop 0,16,0,24 leaves 64x8 of the 64x48 source; each side must keep at "
                                      "least 16 pixels: crop less"),
        (["--set", "crop=40,0,40,0"], "input.crop 40,0,40,0 leaves nothing of the 64x48 source"),
        (["--set", "size=200p"], "output.size 200p is 4.17x of the 64x48 model input; the model is 4x: ask for at "
                                 "most 192p"),
        (["--set", "size=128x128"], "output.size 128x128 changes the display aspect ratio 4:3 of the 64x48 model "
                                    "input to 1:1; use 170x128 or 128p"),
        (["--set", "kernel=sinc"], "output.kernel must be one of lanczos"),
    ],
)  # fmt: skip
def test_each_geometry_refusal_is_one_line_before_anything_renders(
    argv: list[str], message: str, film: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = refusal(encode, str(film), str(tmp_path / "out.mkv"), "--model", "nano", *argv)
    assert message in found and "\n" not in found
    assert refusal(preview, str(film), str(tmp_path / "out.png"), "--model", "nano", *argv) == found
    assert main(["encode", str(film), str(tmp_path / "out.mkv"), "--model", "nano", *argv]) == 2
    assert capsys.readouterr().err == f"streamdiffvsr: error: {found}\n"
    assert list(tmp_path.iterdir()) == []


def test_ivtc_counts_the_range_in_input_frames_and_times_the_output_at_four_fifths(
    film: Path, tmp_path: Path
) -> None:
    request = encode(str(film), str(tmp_path / "out.mkv"), "--model", "nano", "--set", "deinterlace=ivtc",
                     "--start", "5", "--end", "24")  # fmt: skip
    assert request.geometry is not None and request.geometry.deinterlace == "ivtc"
    assert (request.start, request.end, request.fps) == (4, 19, Fraction(24000, 1001))
    assert request.commands is not None and request.commands.info.fps == Fraction(24000, 1001)
    trim = request.commands.trim  # INPUT's frames 5..24: the script's 4..19, the same time
    assert trim is not None and trim.start == pytest.approx(5 * 1001 / 30000, abs=1e-3)  # mkv: milliseconds
    assert trim.duration == pytest.approx(20 * 1001 / 30000, abs=1e-3)
    double = encode(str(film), str(tmp_path / "out.mkv"), "--model", "nano", "--set", "deinterlace=bwdif-double",
                    "--start", "3", "--end", "3")  # fmt: skip
    assert (double.start, double.end, double.fps) == (6, 7, Fraction(60000, 1001))
    looked = preview(str(film), str(tmp_path / "out.png"), "--model", "nano", "--set", "deinterlace=ivtc", "--at",
                     "10,1s")  # fmt: skip
    assert (looked.at, looked.fps) == ((8, 24), Fraction(24000, 1001))  # INPUT's frame 10 and its second 1


def test_a_height_gives_square_pixels_and_a_factor_keeps_the_sample_aspect_ratio(tmp_path: Path) -> None:
    source = tmp_path / "dvd.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=72x48:rate=24", "-frames:v", "2",
                    "-vf", "setsar=32/27", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(source)], check=True)  # fmt: skip
    sized = encode(str(source), str(tmp_path / "out.mkv"), "--model", "nano", "--set", "size=96p")
    assert sized.geometry is not None and sized.geometry.final == (170, 96)
    assert sized.commands is not None and "setsar" not in " ".join(sized.commands.whole(tmp_path / "o.mkv"))
    kept = encode(str(source), str(tmp_path / "out.mkv"), "--model", "nano", "--set", "size=2x")
    assert kept.commands is not None and "setsar=32/27" in kept.commands.whole(tmp_path / "o.mkv")


def test_a_changed_crop_or_size_never_resumes_the_old_segments(film: Path, tmp_path: Path) -> None:
    from streamdiffvsr.cli.segments.jobs import Segment
    from streamdiffvsr.cli.segments.manifest import Manifest, load
    from streamdiffvsr.cli.segments.orchestrator import fingerprint

    def request(*argv: str) -> Request:
        return encode(str(film), str(tmp_path / "out.mkv"), "--model", "nano", *argv)

    folder = tmp_path / "work"
    folder.mkdir()
    Manifest(folder, fingerprint(request("--set", "crop=0,8,0,8")), [Segment(0, 0, 29)]).save()
    assert load(folder, fingerprint(request("--set", "crop=0,8,0,8"))) is not None  # the same encode resumes
    for changed in ("crop=0,8,0,0", "crop=auto", "size=2x", "kernel=spline36", "deinterlace=ivtc"):
        with pytest.raises(CliError, match="holds segments of another encode"):
            load(folder, fingerprint(request("--set", "crop=0,8,0,8", "--set", changed)))


def test_preview_columns_must_share_frames_and_size(film: Path, tmp_path: Path) -> None:
    def columns(*compared: str) -> Request:
        args = build_parser().parse_args(["preview", str(film), str(tmp_path / "out.png"), "--model", "nano"])
        return preview_request(args, [load_settings(None, [c]) for c in compared], (args.output,), [].append)

    assert (
        columns("method=after", "method=before").geometry is not None
    )  # the cost of method=before, compared
    for compared in (
        ("size=2x", "size=4x"),
        ("deinterlace=off", "deinterlace=ivtc"),
        ("crop=none", "crop=auto"),
    ):
        with pytest.raises(CliError, match="preview's columns must have the same frames and output size"):
            columns(*compared)


@contextlib.contextmanager
def grpc_like_listener(answer: bytes) -> Iterator[int]:
    """A loopback port whose server answers each connection with ``answer`` (an HTTP/2 SETTINGS frame: what a
    Ray head's gRPC port says first; b"": silence), stopped at the end."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection, _ = server.accept()
                with connection:
                    connection.recv(64)
                    connection.sendall(answer)
                    stop.wait(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def test_a_ray_encode_is_checked_without_joining_the_cluster(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preflight of --ray looks (something answers as gRPC, a token is at hand) and joins nothing: no Ray,
    no change to the environment; the orchestrator joins the cluster in its own scope."""
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" * 32)
    before = dict(os.environ)
    with grpc_like_listener(SETTINGS) as port:
        request = encode(
            str(clip), str(tmp_path / "out.mkv"), "--ray", f"127.0.0.1:{port}", "--model", "nano"
        )
    assert request.parallel.address == f"127.0.0.1:{port}" and request.parallel.cluster.token == "x" * 32
    assert dict(os.environ) == before
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_an_existing_output_with_ray_is_refused_before_the_cluster_is_looked_at(
    clip: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.mkv"
    output.write_bytes(b"old")
    with grpc_like_listener(b"") as port:  # a silent server: Ray would wait on it for its whole timeout
        message = refusal(encode, str(clip), str(output), "--ray", f"127.0.0.1:{port}")
    assert message == f"OUTPUT {output} exists; pass --overwrite to replace it"


def test_the_retry_count_is_a_setting_a_resume_does_not_match(clip: Path, tmp_path: Path) -> None:
    """segment.max_attempts says how the encode runs, not what it renders: segments of a run with another count
    are resumed."""
    from streamdiffvsr.cli.segments.orchestrator import fingerprint

    output = str(tmp_path / "out.mkv")
    default, more = encode(str(clip), output), encode(str(clip), output, "--set", "segment.max_attempts=7")
    assert (default.settings["max_attempts"], more.settings["max_attempts"]) == (3, 7)
    assert fingerprint(default) == fingerprint(more)
    assert fingerprint(default) != fingerprint(encode(str(clip), output, "--set", "segment.min_frames=7"))
