"""The filter steps with the CPU thread counts it was made with, whichever VapourSynth thread runs a step and
whatever the host sets later (torch keeps its count per OS thread: see ``streamdiffvsr.threads``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("vapoursynth")

# Run in a fresh process: its VapourSynth threads are all made after the host's switch, as in a host (vspipe, a
# previewer, a render worker) that changes torch's count after the script made the filter.
MIXED_HOST = """
import sys
import numpy as np
import torch
import vapoursynth as vs
from streamdiffvsr import StreamDiffVSR
from streamdiffvsr.vsfilter import stream_diffvsr

model, made_with, host_sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frames, height, width = 4, 48, 64  # from 64x48 on, torch rounds differently with 1 and 2 threads
y, x = np.mgrid[0:height, 0:width].astype(np.float32)
data = np.stack([np.stack([0.5 + 0.3 * np.sin((x + 0.7 * t) / 3), 0.5 + 0.3 * np.cos((y - 0.5 * t) / 4),
                           0.5 + 0.2 * np.sin((x + y + 0.3 * t) / 5)]) for t in range(frames)]).astype(np.float32)

torch.set_num_threads(made_with)
expected = StreamDiffVSR.from_pretrained(model, device="cpu", flow="dis", num_steps=2).stream()
expected = [expected.step(torch.from_numpy(frame)[None])[0].numpy() for frame in data]

core = vs.core
core.num_threads = 2
blank = core.std.BlankClip(format=vs.RGBS, width=width, height=height, length=frames, keep=True)

def make(n, f):
    out = f.copy()
    for plane in range(3):
        np.copyto(np.asarray(out[plane]), data[n, plane])
    return out

clip = stream_diffvsr(core.std.ModifyFrame(blank, blank, make), model=model, flow="dis", steps=2)
torch.set_num_threads(host_sets)  # the host changes the count after the script made the filter
got = [np.stack([np.asarray(f[p]).copy() for p in range(3)]) for f in clip.frames()]
worst = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
print(worst)
sys.exit(0 if worst == 0 else 1)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("made_with", "host_sets"), [(1, 2), (2, 1)])
def test_steps_keep_the_filters_thread_count_after_the_host_changes_it(
    tiny_checkpoint: Path, made_with: int, host_sets: int
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)
    run = subprocess.run(
        [sys.executable, "-c", MIXED_HOST, str(tiny_checkpoint), str(made_with), str(host_sets)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, f"frames differ from the engine's by up to {run.stdout.strip()}\n{run.stderr}"


def test_applied_counts_hold_inside_and_the_thread_keeps_its_own_after() -> None:
    import cv2
    import torch

    from streamdiffvsr.threads import CpuThreads

    seen: dict[str, object] = {}

    def worker() -> None:
        seen["own"] = CpuThreads.current()
        with CpuThreads(1, 1).applied():
            seen["inside"] = CpuThreads.current()
        seen["after"] = CpuThreads.current()

    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["own"] == CpuThreads(2, 2)
    assert seen["inside"] == CpuThreads(1, 1)
    assert seen["after"] == CpuThreads(2, 2)
