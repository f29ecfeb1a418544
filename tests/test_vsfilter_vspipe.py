"""The filter under vspipe with several concurrent requests and worker threads: the same bits as a fresh stream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("vapoursynth")
pytestmark = pytest.mark.usefixtures(
    "one_cpu_thread"
)  # the engine reference, as vspipe runs (OMP_NUM_THREADS=1)

from streamdiffvsr import StreamDiffVSR  # noqa: E402

VSPIPE = Path(sys.executable).parent / "vspipe"
FRAMES, WIDTH, HEIGHT = 10, 32, 24

SCRIPT = """
import numpy as np
import vapoursynth as vs
from streamdiffvsr.vsfilter import frame_server, stream_diffvsr

core = vs.core
core.num_threads = int(threads)
data = np.load(data_path)
blank = core.std.BlankClip(format=vs.RGBS, width=data.shape[3], height=data.shape[2], length=len(data), keep=True)

def make(n, f):
    out = f.copy()
    for plane in range(3):
        np.copyto(np.asarray(out[plane]), data[n, plane])
    return out

clip = stream_diffvsr(core.std.ModifyFrame(blank, blank, make), model=model, flow="dis", steps=1,
                      snapshot_interval=3)
frame_server(clip).outputs.capacity = 1  # out-of-order arrivals must recompute, not hit the cache
core.std.SetVideoCache(clip, 0)
clip.set_output()
"""


@pytest.mark.slow
@pytest.mark.skipif(not VSPIPE.exists(), reason="needs vspipe beside the Python executable")
def test_vspipe_requests_and_threads_exact(tiny_checkpoint: Path, tmp_path: Path) -> None:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    data = np.stack(
        [
            np.stack(
                [
                    0.5 + 0.3 * np.sin((x + t) / 4),
                    0.5 + 0.3 * np.cos((y - t) / 5),
                    0.5 + 0.2 * np.sin((x + y) / 6),
                ]
            )
            for t in range(FRAMES)
        ]
    ).astype(np.float32)
    np.save(tmp_path / "data.npy", data)
    (tmp_path / "check.vpy").write_text(SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [str(VSPIPE), "--requests", "4", "check.vpy", "out.raw", "--arg", "threads=4",
         "--arg", f"data_path={tmp_path / 'data.npy'}", "--arg", f"model={tiny_checkpoint}"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    got = np.fromfile(tmp_path / "out.raw", dtype=np.float32).reshape(FRAMES, 3, 4 * HEIGHT, 4 * WIDTH)
    got = got[:, [2, 0, 1]]  # vspipe writes RGB planes in G, B, R order

    stream = StreamDiffVSR.from_pretrained(
        str(tiny_checkpoint), device="cpu", flow="dis", num_steps=1
    ).stream()
    for n in range(FRAMES):
        expected = stream.step(torch.from_numpy(data[n])[None])[0].numpy()
        np.testing.assert_array_equal(got[n], expected, err_msg=f"frame {n}")


SOAK_FRAMES, SOAK_EARLY = 1000, 100
SOAK_SCRIPT = """
import sys
import numpy as np
import vapoursynth as vs
from streamdiffvsr.vsfilter import frame_server, stream_diffvsr

core = vs.core
rng = np.random.default_rng(0)
data = rng.random((4, 3, 16, 16), dtype=np.float32)
blank = core.std.BlankClip(format=vs.RGBS, width=16, height=16, length=4, keep=True)

def make(n, f):
    out = f.copy()
    for plane in range(3):
        np.copyto(np.asarray(out[plane]), data[n, plane])
    return out

src = core.std.Loop(core.std.ModifyFrame(blank, blank, make), times=int(frames) // 4)
clip = stream_diffvsr(src, model=model, flow="none", steps=1, scene_detect=False, snapshot_interval=2)
server = frame_server(clip)

def rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

def report(n, f):
    if n + 1 in (int(early), int(frames)):
        print(f"after {n + 1}: rss {rss_bytes()} snapshots {len(server.snapshots.entries)}", file=sys.stderr)
    return f

core.std.ModifyFrame(clip, clip, report).set_output()
"""


@pytest.mark.slow
@pytest.mark.skipif(not VSPIPE.exists(), reason="needs vspipe beside the Python executable")
def test_linear_encode_runs_in_flat_memory(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """1000 frames in order through vspipe: the stream-state snapshots must not pile up (they did, up to their
    1 GiB budget, though a linear encode never seeks back to them)."""
    (tmp_path / "soak.vpy").write_text(SOAK_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [str(VSPIPE), "--requests", "1", "soak.vpy", "-", "--arg", f"model={tiny_checkpoint}",
         "--arg", f"frames={SOAK_FRAMES}", "--arg", f"early={SOAK_EARLY}"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    samples = {}
    for line in run.stderr.splitlines():
        if line.startswith("after "):
            words = line.split()
            samples[int(words[1].rstrip(":"))] = (int(words[3]), int(words[5]))
    (early_rss, early_snaps), (late_rss, late_snaps) = samples[SOAK_EARLY], samples[SOAK_FRAMES]
    assert late_rss <= early_rss * 1.05, f"RSS {early_rss / 2**20:.0f} -> {late_rss / 2**20:.0f} MiB"
    assert late_snaps <= 2 * early_snaps, f"snapshots {early_snaps} -> {late_snaps}"
