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
                      checkpoint_interval=3)
frame_server(clip).outputs.capacity = 1  # out-of-order arrivals must recompute, not hit the cache
core.std.SetVideoCache(clip, 0)
clip.set_output()
"""


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

    torch.set_num_threads(1)
    stream = StreamDiffVSR.from_pretrained(
        str(tiny_checkpoint), device="cpu", flow="dis", num_steps=1
    ).stream()
    for n in range(FRAMES):
        expected = stream.step(torch.from_numpy(data[n])[None])[0].numpy()
        np.testing.assert_array_equal(got[n], expected, err_msg=f"frame {n}")
