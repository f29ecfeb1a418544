"""``encode INPUT... OUTDIR``: a batch of files on one pool of workers (real workers, Ray, ffmpeg; the tiny
checkpoint on 32x24 clips, ffv1 so that frames compare bit for bit with single-file encodes)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from streamdiffvsr.cli.segments.batch import RECORD, Record, batch_pairs, folder_videos, output_name
from tests.test_cli_encode import CLI, PASSTHROUGH_VPY, ffmpeg
from tests.test_cli_segments import FPS, LOSSLESS, framemd5

SCENE_FRAMES = 6
SPLIT = ["--set", f"segment.min_frames={SCENE_FRAMES}"]  # each clip: two segments
NAMES = ("ep1.mkv", "ep2.mkv", "ep3.mkv")


def make_clip(path: Path, hue: int) -> Path:
    """Two scenes of SCENE_FRAMES frames (one cut), tinted by ``hue`` so that each clip is its own."""
    seconds = f"{SCENE_FRAMES / FPS:.6f}"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size=32x24:rate={FPS}:duration={seconds}",
        "-f", "lavfi", "-i", f"testsrc2=size=32x24:rate={FPS}:duration={seconds}",
        "-filter_complex", f"[0][1]concat=n=2:v=1:a=0,hue=h={hue}[v]", "-map", "[v]",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def make_season(folder: Path) -> Path:
    folder.mkdir()
    for number, name in enumerate(NAMES):
        make_clip(folder / name, 60 * number)
    (folder / "notes.txt").write_text("not a video")
    return folder


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), "encode", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_season(tmp_path_factory.mktemp("season") / "season")


@pytest.fixture(scope="module")
def singles(
    season: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[str]]:
    """Each clip encoded alone with the batch's settings (one worker), as decoded frames."""
    folder = tmp_path_factory.mktemp("singles")
    frames = {}
    for name in NAMES:
        result = run(str(season / name), str(folder / name), "--model", str(tiny_checkpoint), *LOSSLESS, *SPLIT,
                     "--workers", "1")  # fmt: skip
        assert result.returncode == 0, result.stderr
        frames[name] = framemd5(folder / name)
    return frames


def test_outdir_names_keep_the_container_where_the_codec_fits_else_mkv(tmp_path: Path) -> None:
    assert output_name(Path("/a/ep.mp4"), "x265") == "ep.mp4"
    assert output_name(Path("/a/ep.MKV"), "ffv1") == "ep.MKV"
    assert output_name(Path("/a/ep.mp4"), "ffv1") == "ep.mkv"  # FFV1 does not go into MP4
    assert output_name(Path("/a/ep.avi"), "x265") == "ep.mkv"
    for name in ("b.mkv", "a.MP4", ".hidden.mkv", "notes.txt", "c.ts"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub.mkv").mkdir()
    assert [p.name for p in folder_videos(tmp_path)] == ["a.MP4", "b.mkv", "c.ts"]
    pairs, problems = batch_pairs([tmp_path, tmp_path / "b.mkv"], tmp_path / "out", "x265")
    assert [(s.name, o.name) for s, o in pairs] == [("a.MP4", "a.MP4"), ("b.mkv", "b.mkv"), ("c.ts", "c.mkv")]
    assert problems == [("b.mkv", f"writes b.mkv, as {tmp_path / 'b.mkv'} does; rename one of them")]


def test_the_record_knows_only_the_file_the_batch_wrote(tmp_path: Path) -> None:
    output = tmp_path / "ep.mkv"
    output.write_bytes(b"video")
    Record(tmp_path).add(output, {"settings": {"seed": 0}})
    record = Record(tmp_path)  # as a rerun reads it
    assert record.finished(output, {"settings": {"seed": 0}})
    assert record.wrote(output) and not record.finished(output, {"settings": {"seed": 1}})
    replaced = tmp_path / "new.mkv"
    replaced.write_bytes(b"video")
    replaced.replace(output)  # the same name and size, another file
    assert not Record(tmp_path).wrote(output)


@pytest.mark.slow
def test_a_folder_on_two_workers_is_each_file_encoded_alone(
    season: Path, tiny_checkpoint: Path, singles: dict[str, list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run(str(season), str(out), "--model", str(tiny_checkpoint), *LOSSLESS, *SPLIT, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([RECORD, *NAMES])  # notes.txt left alone
    for name in NAMES:
        assert framemd5(out / name) == singles[name], name
    table = result.stdout.splitlines()
    assert table[0].split() == ["file", "frames", "time", "result"]
    assert [line.split()[0] for line in table[1:]] == list(NAMES)
    assert all(line.split()[1] == str(2 * SCENE_FRAMES) and line.endswith(" done") for line in table[1:])
    assert result.stderr.count("streamdiffvsr: filter: ") == 1  # each notice once for the batch

    again = run(str(season), str(out), "--model", str(tiny_checkpoint), *LOSSLESS, *SPLIT, "--workers", "2")
    assert again.returncode == 0 and again.stdout.count("already done") == 3, again.stderr
    other = run(str(season), str(out), "--model", str(tiny_checkpoint), *LOSSLESS, *SPLIT, "--set", "seed=1")
    assert other.returncode == 2
    refused = [line for line in other.stderr.splitlines() if line.startswith("streamdiffvsr: error: ep")]
    assert len(refused) == 3 and all("--overwrite" in line for line in refused)


@pytest.mark.slow
def test_a_refused_file_stops_the_batch_unless_skip_refused(season: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("ep1.mkv", "ep3.mkv"):
        (folder / name).hardlink_to(season / name)
    (folder / "ep2.mkv").write_text("not a video")
    script = tmp_path / "pass.vpy"
    script.write_text(PASSTHROUGH_VPY + "clip.set_output()\n")
    out = tmp_path / "out"
    args = [str(folder), str(out), "--vpy", str(script), "--set", "codec=ffv1", "--quiet"]

    refused = run(*args)
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.startswith("streamdiffvsr: error: ")]
    assert len(errors) == 2 and errors[0].startswith("streamdiffvsr: error: ep2.mkv: ")
    assert "1 of 3 files refused" in errors[1] and "--skip-refused" in errors[1]
    assert list(out.iterdir()) == []

    skipped = run(*args, "--skip-refused")
    assert skipped.returncode == 1, skipped.stderr
    assert sorted(p.name for p in out.iterdir()) == [RECORD, "ep1.mkv", "ep3.mkv"]
    rows = {line.split()[0]: line for line in skipped.stdout.splitlines()[1:]}
    assert rows["ep2.mkv"].endswith(" refused") and rows["ep1.mkv"].endswith(" done")


@pytest.mark.slow
def test_a_file_failing_midway_is_reported_and_the_others_finish(season: Path, tmp_path: Path) -> None:
    script = tmp_path / "fails.vpy"
    script.write_text(
        PASSTHROUGH_VPY
        + "def fail(n, f):\n"
        + "    if n == 5 and 'ep2' in str(src):\n        raise RuntimeError('broken stream at frame 5')\n"
        + "    return f\n"
        + "core.std.ModifyFrame(clip, clip, fail).set_output()\n"
    )
    out = tmp_path / "out"
    result = run(*(str(season / name) for name in NAMES), str(out), "--vpy", str(script), "--set", "codec=ffv1",
                 "--quiet")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [RECORD, "ep1.mkv", "ep3.mkv"]  # nothing of ep2 left
    assert (
        "streamdiffvsr: ep2.mkv: failed: script failed (RuntimeError: broken stream at frame 5"
        in result.stderr
    )
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "failed: script failed" in rows["ep2.mkv"]
    assert rows["ep1.mkv"].endswith(" done") and rows["ep3.mkv"].endswith(" done")
    assert set(json.loads((out / RECORD).read_text())["files"]) == {"ep1.mkv", "ep3.mkv"}


@pytest.mark.slow
def test_an_interrupted_batch_resumes_and_never_renders_a_finished_file_again(
    season: Path, tiny_checkpoint: Path, singles: dict[str, list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(season), str(out), "--model", str(tiny_checkpoint), *LOSSLESS, *SPLIT, "--workers", "1"]
    cli = subprocess.Popen([str(CLI), "encode", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = out / ".ep2.mkv.segments" / "manifest.json"
    deadline = time.monotonic() + 300
    try:  # killed once ep1 is finished and ep2 has a finished segment
        while not (manifest.is_file() and json.loads(manifest.read_text())["done"]):
            assert cli.poll() is None and time.monotonic() < deadline, cli.stderr.read()
            time.sleep(0.05)
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    first = (out / "ep1.mkv").stat()
    assert not (out / "ep2.mkv").exists() and not (out / "ep3.mkv").exists()

    resumed = run(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "ep2.mkv: resuming: 1 of 2 segments already done" in resumed.stderr
    assert "ep1.mkv: segment" not in resumed.stderr  # never rendered again
    again = (out / "ep1.mkv").stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    rows = {line.split()[0]: line for line in resumed.stdout.splitlines()[1:]}
    assert rows["ep1.mkv"].endswith("already done") and rows["ep2.mkv"].endswith(" done")
    for name in NAMES:
        assert framemd5(out / name) == singles[name], name
    assert sorted(p.name for p in out.iterdir()) == sorted([RECORD, *NAMES])


@pytest.mark.slow
def test_a_batch_dry_run_plans_each_file_and_totals_them(
    season: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run(str(season), str(out), "--model", str(tiny_checkpoint), *LOSSLESS, *SPLIT, "--workers", "2",
                 "--dry-run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert f"{name} -> {out / name}\n  plan: 2 segments" in result.stdout
    total = result.stdout.split("batch: 3 files on one pool\n")[1]
    assert f"frames     {3 * 2 * SCENE_FRAMES}" in total and "6 segments on 2 workers" in total
    assert list(out.iterdir()) == []
