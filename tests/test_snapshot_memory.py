"""Snapshot memory (issue 19): a byte budget that holds whatever the frame size, and none at all in the script an
encode generates (it is read in order, so a snapshot would never be used). Real VapourSynth, tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

vs = pytest.importorskip("vapoursynth")

from streamdiffvsr.cli.media.vpy import generate_script  # noqa: E402
from streamdiffvsr.cli.settings.presets import load_settings  # noqa: E402
from streamdiffvsr.vsfilter import frame_server, stream_diffvsr  # noqa: E402

from .test_cli_encode import ffmpeg  # noqa: E402

core = vs.core
FRAMES = 12


def source(path: Path) -> Path:
    """A 32x24 clip of one scene (smooth motion: no cut), as a file for BestSource."""
    blank = core.std.BlankClip(format=vs.YUV420P8, width=32, height=24, length=FRAMES, fpsnum=24, keep=True)

    def ramp(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        y, x = np.mgrid[0:24, 0:32]
        np.asarray(out[0])[:] = (128 + 60 * np.sin((x + n) / 4) * np.cos(y / 5)).astype(np.uint8)
        return out

    raw = path.with_suffix(".y4m")
    with raw.open("wb") as handle:
        core.std.ModifyFrame(blank, blank, ramp).output(handle, y4m=True)
    ffmpeg("-i", str(raw), "-c:v", "ffv1", str(path))
    return path


def snapshot_bytes(server) -> int:
    return sum(t.numel() * t.element_size() for t in server.stream.state_dict().values())


@pytest.mark.slow
def test_snapshots_stay_within_a_budget_smaller_than_two_states(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    clip = core.bs.VideoSource(str(source(tmp_path / "scene.mkv")))
    out = stream_diffvsr(
        core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s="170m"),
        model=str(tiny_checkpoint), flow="dis", steps=1, snapshot_interval=1,
    )  # fmt: skip
    server = frame_server(out)
    out.get_frame(0)
    server.snapshots.budget = snapshot_bytes(server) * 3 // 2  # room for one state, not two
    for n in range(FRAMES):
        out.get_frame(n)
    assert len(server.snapshots.entries) == 1
    assert server.snapshots.nbytes <= server.snapshots.budget


@pytest.mark.slow
def test_the_generated_script_keeps_no_snapshots(tiny_checkpoint: Path, tmp_path: Path) -> None:
    settings = load_settings(None, ["flow=dis", "steps=1", "snapshot_interval=2"])
    namespace = {"src": str(source(tmp_path / "scene.mkv")), "model": str(tiny_checkpoint)}
    exec(compile(generate_script(settings), "generated.vpy", "exec"), namespace)  # as a render worker runs it
    vs.clear_output(0)
    for n in range(FRAMES):
        namespace["clip"].get_frame(n)
    server = frame_server(namespace["upscaled"])
    assert server.steps_run == FRAMES
    assert (len(server.snapshots.entries), server.snapshots.nbytes) == (0, 0)
