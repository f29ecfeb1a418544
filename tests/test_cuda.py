"""The filter and the engine on a CUDA device (skipped without one; bench/gpu_check.sh runs them on a GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from streamdiffvsr import StreamDiffVSR

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

vs = pytest.importorskip("vapoursynth")

from streamdiffvsr.vsfilter import ANCHOR_PROP, frame_server, stream_diffvsr  # noqa: E402

from .test_vsfilter import ORDERS, numpy_clip, pattern, to_array  # noqa: E402

core = vs.core
SCENE = pattern(12, 0)
# fp32 CPU against fp32 CUDA, on [0, 1] outputs of the tiny random model over a 4-frame chain. Without TF32 the
# two differ by float32 summation order only; with TF32 (the CUDA default here) by its 10-bit mantissa.
FP32_ATOL = 1e-3
TF32_ATOL, TF32_MEAN = 5e-2, 5e-3


def stream_frames(model: Path, data: np.ndarray, device: str, precision: str, tf32: bool = True, **kw):
    engine = StreamDiffVSR.from_pretrained(str(model), device=device, dtype=precision, **kw)
    engine.tf32 = tf32 and engine.tf32
    stream = engine.stream()
    return [stream.step(torch.from_numpy(f)[None].to(device))[0].cpu() for f in data]


@pytest.fixture(scope="module")
def bf16_reference(tiny_checkpoint: Path) -> list[np.ndarray]:
    frames = stream_frames(tiny_checkpoint, SCENE, "cuda:0", "bf16", flow="dis", num_steps=1)
    return [f.numpy() for f in frames]


def cuda_filter(model: Path, clip: vs.VideoNode, **kwargs) -> vs.VideoNode:
    out = stream_diffvsr(clip, model=str(model), flow="dis", steps=1, **kwargs)
    core.std.SetVideoCache(out, 0)
    return out


def test_cuda_networks_use_sdpa_or_xformers(tiny_checkpoint: Path) -> None:
    engine = StreamDiffVSR.from_pretrained(str(tiny_checkpoint), device="cuda:0", flow="none")
    assert engine.dtype == torch.bfloat16  # options.default_precision on CUDA
    kinds = {type(p).__name__ for p in engine.components.unet.attn_processors.values()}
    assert kinds in ({AttnProcessor2_0.__name__}, {"XFormersAttnProcessor"}), kinds


@pytest.mark.parametrize("order", ["reverse", "random", "repeated"])
def test_cuda_bf16_filter_exact_in_any_order(tiny_checkpoint: Path, bf16_reference, order: str) -> None:
    before = core.num_threads
    core.num_threads = 4
    try:
        out = cuda_filter(tiny_checkpoint, numpy_clip(SCENE), snapshot_interval=3)
        frame_server(out).outputs.capacity = 1  # out-of-order requests recompute through snapshots
        frames = ORDERS[order]
        results = [f.result() for f in [out.get_frame_async(n) for n in frames]]
    finally:
        core.num_threads = before
    assert frame_server(out).engine.dtype == torch.bfloat16
    for n, frame in zip(frames, results, strict=True):
        assert frame.props[ANCHOR_PROP] == 0
        np.testing.assert_array_equal(to_array(frame), bf16_reference[n], err_msg=f"frame {n} ({order})")


@pytest.mark.parametrize("tf32", [False, True])
def test_cuda_fp32_agrees_with_the_cpu(tiny_checkpoint: Path, tf32: bool) -> None:
    data = SCENE[:4]
    cpu = stream_frames(tiny_checkpoint, data, "cpu", "fp32", flow="none", num_steps=2)
    gpu = stream_frames(tiny_checkpoint, data, "cuda:0", "fp32", tf32=tf32, flow="none", num_steps=2)
    diffs = [(a - b).abs() for a, b in zip(cpu, gpu, strict=True)]
    worst, mean = max(d.max().item() for d in diffs), max(d.mean().item() for d in diffs)
    print(f"CPU vs CUDA fp32 (tf32={tf32}): max |diff| {worst:.2e}, mean {mean:.2e}")
    if tf32:
        assert worst <= TF32_ATOL and mean <= TF32_MEAN, (worst, mean)
    else:
        assert worst <= FP32_ATOL, worst


def test_cuda_fp32_frames_run_with_tf32_and_restore_it(tiny_checkpoint: Path) -> None:
    engine = StreamDiffVSR.from_pretrained(str(tiny_checkpoint), device="cuda:0", dtype="fp32", flow="none")
    seen = []
    hook = engine.components.unet.register_forward_pre_hook(
        lambda m, a: seen.append(torch.backends.cuda.matmul.allow_tf32)
    )
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        engine.stream().step(torch.rand(1, 3, 24, 32, device="cuda:0"))
    finally:
        hook.remove()
    assert seen and all(seen) and torch.backends.cuda.matmul.allow_tf32 == before


def test_cuda_out_of_memory_is_a_clear_error_and_the_next_frame_is_right(
    tiny_checkpoint: Path, bf16_reference
) -> None:
    out = cuda_filter(tiny_checkpoint, numpy_clip(SCENE[:4]))
    engine = frame_server(out).engine
    calls = []

    def allocate_too_much(module, args) -> None:  # a real allocation the card cannot hold, in frame 1
        calls.append(1)
        if len(calls) == 2:
            torch.empty(1 << 50, dtype=torch.uint8, device=engine.device)

    hook = engine.components.unet.register_forward_pre_hook(allocate_too_much)
    try:
        with pytest.raises(vs.Error, match=r"frame 2: out of GPU memory at 128x96 output") as info:
            out.get_frame(2)
    finally:
        hook.remove()
    fixes = str(info.value).split("; try ", 1)[1]
    assert "precision" not in fixes and "flow_scale" not in fixes  # bf16 and flow_scale=1 are in use
    for n in (2, 3):
        np.testing.assert_array_equal(to_array(out.get_frame(n)), bf16_reference[n])


def test_cuda_device_index_beyond_the_device_count() -> None:
    count = torch.cuda.device_count()
    clip = core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=1)
    with pytest.raises(
        vs.Error, match=rf"device_index={count} is out of range: there are {count} CUDA device"
    ):
        stream_diffvsr(clip, model="tiny", device_index=count)
    last = stream_diffvsr(clip, model="tiny", device_index=count - 1, flow="none", steps=1)
    assert last.get_frame(0).width == 128


def test_cuda_compiled_networks_give_the_same_frames(tiny_checkpoint: Path) -> None:
    data = SCENE[:2]
    eager = stream_frames(tiny_checkpoint, data, "cuda:0", "fp32", tf32=False, flow="none", num_steps=1)
    compiled = stream_frames(
        tiny_checkpoint, data, "cuda:0", "fp32", tf32=False, flow="none", num_steps=1, compile=True
    )
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-3)
