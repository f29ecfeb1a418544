"""The files an encode writes (issue 25): OUTPUT on a filesystem without hard links, nothing written through a
link or deleted outside the work folder, INPUT never taken for a leftover, and the odd names and entries that
are refused in one line before anything renders."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamdiffvsr.cli.errors import EncodeError
from streamdiffvsr.cli.segments.join import join
from streamdiffvsr.cli.segments.partials import NotCommitted, move_into_place, verify_and_commit

from .test_cli_encode import make_clip
from .test_cli_reliability import encode as encode_in_process
from .test_cli_segments import LOSSLESS, SEGMENTED, SEGMENTS, encode, framemd5, make_scenes

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

DEAD_PID = 3999999  # below Linux's largest PID, and not running (checked)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "sample.mkv")


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@contextlib.contextmanager
def exfat(folder: Path) -> Iterator[Path]:
    """An exFAT filesystem (no hard links, like vfat or some network mounts) mounted on ``folder`` through FUSE
    from a loop device; skips where that cannot be done. (vfat itself is not in this sandbox's kernel.)"""
    for tool in ("mkfs.exfat", "mount.exfat-fuse", "losetup"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install exfatprogs exfat-fuse)")
    image = folder.with_name(folder.name + ".img")
    with image.open("wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    attached = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if attached.returncode != 0:
        pytest.skip(f"no loop device here ({attached.stderr.strip()})")
    device = attached.stdout.strip()
    folder.mkdir()
    daemon = subprocess.Popen(  # -d: in the foreground, so that the test owns (and stops) it
        ["mount.exfat-fuse", "-d", device, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(folder):
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.skip("cannot mount exFAT here")
            time.sleep(0.05)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False, capture_output=True)
        try:  # it ends once no mount namespace has the filesystem (other processes' copies may keep it)
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.terminate()
            daemon.wait()
        subprocess.run(["losetup", "-d", device], check=False)
        image.unlink()


def test_move_into_place_without_hard_links_never_replaces_a_file_created_meanwhile(tmp_path: Path) -> None:
    with exfat(tmp_path / "exfat") as folder:
        partial, target = folder / "partial", folder / "target"
        partial.write_bytes(b"verified")
        with pytest.raises(PermissionError):
            os.link(partial, folder / "link")  # the filesystem has no hard links
        target.write_bytes(b"the other run's")
        with pytest.raises(FileExistsError):
            move_into_place(partial, target, overwrite=False)
        assert target.read_bytes() == b"the other run's" and partial.read_bytes() == b"verified"
        target.unlink()
        move_into_place(partial, target, overwrite=False)
        assert target.read_bytes() == b"verified" and not partial.exists()


def three_frames(path: Path) -> list[str]:
    """An ffmpeg command writing a 3-frame video to ``path``."""
    source = "testsrc=size=64x48:rate=24:duration=0.125"
    return [
        shutil.which("ffmpeg"),
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        source,
        "-c:v",
        "ffv1",
        str(path),
    ]


def test_verify_and_commit_moves_only_a_whole_file_and_says_whose_fault_it_is(tmp_path: Path) -> None:
    """The one verify-then-move of a segment and of the join: an incomplete file is the writer's fault (its
    tail says why), a target someone made meanwhile or an unwritable one is the target's."""
    ffprobe, partial, target = shutil.which("ffprobe"), tmp_path / "partial.nut", tmp_path / "target.nut"
    subprocess.run(three_frames(partial), check=True)
    with pytest.raises(
        NotCommitted, match="exit status 0, but the file is incomplete: it has 3 of the 4"
    ) as got:
        verify_and_commit(partial, target, ffprobe, 4, overwrite=False)
    assert got.value.incomplete and not got.value.retryable and not target.exists()
    target.write_bytes(b"the other run's")
    with pytest.raises(NotCommitted, match="created by someone else meanwhile; pass --overwrite") as got:
        verify_and_commit(partial, target, ffprobe, 3, overwrite=False)
    assert not got.value.incomplete and target.read_bytes() == b"the other run's"
    with pytest.raises(NotCommitted, match="cannot write .*missing.*: No such file or directory") as got:
        verify_and_commit(partial, tmp_path / "missing" / "target.nut", ffprobe, 3, overwrite=False)
    assert not got.value.incomplete and got.value.retryable
    verify_and_commit(partial, target, ffprobe, 3, overwrite=True)
    assert not partial.exists() and target.stat().st_size > len(b"the other run's")


def test_a_join_that_cannot_be_moved_into_place_is_a_failed_encode(tmp_path: Path) -> None:
    """As a segment's move: one EncodeError naming the target, never a bare OSError."""
    partial, output = tmp_path / "joined.partial.nut", tmp_path / "gone" / "out.nut"
    with pytest.raises(
        EncodeError, match=r"the join failed \(cannot write .*gone.*\); no output was written"
    ):
        join(three_frames(partial), shutil.which("ffprobe"), partial, output, 3, overwrite=False)
    assert not partial.exists()


@pytest.mark.slow
def test_output_and_work_folder_on_a_filesystem_without_hard_links(
    clip: Path, passthrough: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    scenes = make_scenes(tmp_path / "scenes.mkv")
    with exfat(tmp_path / "exfat") as folder:
        assert (
            encode_in_process(clip, folder / "whole.mkv", "--vpy", passthrough) == 0
        )  # one segment, straight into OUTPUT
        assert framemd5(folder / "whole.mkv")
        split = encode(str(scenes), str(folder / "split.mkv"), "--model", str(tiny_checkpoint), *LOSSLESS,
                       *SEGMENTED)  # fmt: skip
        assert split.stderr.count(" done in ") == SEGMENTS
        assert len(framemd5(folder / "split.mkv")) == SEGMENTS * 4
        assert {p.name for p in folder.iterdir()} == {"whole.mkv", "split.mkv"}


@pytest.mark.slow
def test_input_and_script_named_like_leftovers_are_never_removed(
    clip: Path, passthrough: Path, tmp_path: Path, capsys
) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(DEAD_PID, 0)
    source = tmp_path / f".x.partial-{DEAD_PID}.mkv"
    shutil.copy(clip, source)
    script = tmp_path / f".x.partial-{DEAD_PID - 1}.vpy"
    shutil.copy(passthrough, script)
    outside = tmp_path / "outside.mkv"
    outside.write_bytes(b"not the encode's")
    (tmp_path / f".x.partial-{DEAD_PID - 2}.mkv").symlink_to(outside)
    assert encode_in_process(source, tmp_path / "x.mkv", "--vpy", script) == 0
    assert "removed what an interrupted run left" not in capsys.readouterr().err
    assert source.read_bytes() == clip.read_bytes() and script.read_bytes() == passthrough.read_bytes()
    assert (
        tmp_path / f".x.partial-{DEAD_PID - 2}.mkv"
    ).is_symlink() and outside.read_bytes() == b"not the encode's"


@pytest.mark.slow
def test_links_in_the_work_folder_are_never_written_through(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    scenes = make_scenes(tmp_path / "scenes.mkv")
    folder = tmp_path / ".out.mkv.segments"
    folder.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    names = [
        "segment-00000.partial-3999999.nut",
        "segment-00001.nut",
        "joined.partial.mkv",
        "segments.ffconcat",
    ]
    for name in names:
        (outside / name).write_bytes(b"someone's file")
        (folder / name).symlink_to(outside / name)
    output = tmp_path / "out.mkv"
    encode(str(scenes), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *SEGMENTED)
    assert all((outside / name).read_bytes() == b"someone's file" for name in names)
    assert len(framemd5(output)) == SEGMENTS * 4 and not folder.exists()


def test_a_dangling_link_as_output_is_refused_before_rendering(
    clip: Path, passthrough: Path, tmp_path: Path, capsys
) -> None:
    output = tmp_path / "out.mkv"
    output.symlink_to(tmp_path / "gone" / "out.mkv")
    assert encode_in_process(clip, output, "--vpy", passthrough) == 2
    line = last_line(capsys)
    assert line.startswith("streamdiffvsr: error: OUTPUT ") and "does not exist; remove the link" in line
    assert {p.name for p in tmp_path.iterdir()} == {"out.mkv"} and output.is_symlink()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["link", "folder"])
def test_a_lock_file_that_is_a_link_or_a_folder_is_one_line(
    kind: str, clip: Path, passthrough: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / ".out.mkv.segments"
    folder.mkdir()
    if kind == "link":
        (folder / "lock").symlink_to(tmp_path / "elsewhere")
    else:
        (folder / "lock").mkdir()
    assert encode_in_process(clip, tmp_path / "out.mkv", "--vpy", passthrough) == 2
    line = last_line(capsys)
    assert line.startswith("streamdiffvsr: error: cannot take the lock file ") and f"(a {kind})" in line
    assert "remove it" in line and not (tmp_path / "elsewhere").exists()


def test_an_output_name_too_long_for_the_hidden_names_is_one_line(
    clip: Path, passthrough: Path, tmp_path: Path, capsys
) -> None:
    output = tmp_path / ("x" * 240 + ".mkv")  # a valid name, but .NAME.partial-PID.mkv would not be
    assert encode_in_process(clip, output, "--vpy", passthrough) == 2
    line = last_line(capsys)
    assert line.startswith("streamdiffvsr: error: OUTPUT's name is too long") and "shorten it by " in line
    assert list(tmp_path.iterdir()) == []
