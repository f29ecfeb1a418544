"""The parts of the CUDA path that a CPU can check: attention processor choice, the profiler's device, the output
cache's budget, cleanup after an out-of-memory error, its message, and torch.compile's output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from streamdiffvsr import StreamDiffVSR
from streamdiffvsr.checkpoint import select_attention
from streamdiffvsr.profiling import StageTimer

from .test_engine import clip

vs = pytest.importorskip("vapoursynth")

from streamdiffvsr.cli.settings.presets import load_settings  # noqa: E402
from streamdiffvsr.vsfilter import frame_server, stream_diffvsr  # noqa: E402
from streamdiffvsr.vsfilter.filter import out_of_memory_message  # noqa: E402
from streamdiffvsr.vsfilter.server import MIN_OUTPUTS, OUTPUT_BUDGET, output_cache_size  # noqa: E402

from .test_vsfilter import numpy_clip, pattern, to_array  # noqa: E402


class OutOfMemoryAt:
    """A forward hook that raises CUDA's out-of-memory error on its ``at``-th call (counting from 1)."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, module, args) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")


def test_attention_is_sdpa_on_every_device(tiny_checkpoint: Path) -> None:
    engine = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="none")
    for model in (engine.components.unet, engine.components.controlnet):
        assert {type(p) for p in model.attn_processors.values()} == {AttnProcessor2_0}
    # The CUDA branch without xformers (not installed here, as on a default install): SDPA, also after
    # something set diffusers' classic default processor.
    unet = UNet2DConditionModel.from_pretrained(tiny_checkpoint, subfolder="unet")
    unet.set_default_attn_processor()
    select_attention(torch.device("cuda"), unet)
    assert {type(p) for p in unet.attn_processors.values()} == {AttnProcessor2_0}


def test_stage_timer_waits_for_its_own_device(monkeypatch: pytest.MonkeyPatch) -> None:
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    timer = StageTimer(torch.device("cuda", 1))
    with timer("denoise"):
        pass
    assert waited == [torch.device("cuda", 1)] * 2
    with StageTimer(torch.device("cpu"))("denoise"):
        pass
    assert len(waited) == 2


def test_output_cache_stays_within_its_budget() -> None:
    frame_4k, frame_720p = 3840 * 2160 * 3 * 4, 1280 * 720 * 3 * 4
    assert output_cache_size(frame_4k) == MIN_OUTPUTS  # 2 x 95 MiB, whatever core.num_threads is
    assert output_cache_size(frame_720p) * frame_720p <= OUTPUT_BUDGET
    assert output_cache_size(frame_720p) == 24
    assert output_cache_size(128 * 96 * 3 * 4) == 64


def test_out_of_memory_mid_frame_leaves_the_next_frame_right(tiny_checkpoint: Path) -> None:
    engine = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis", num_steps=2)
    frames = clip(3)
    stream = engine.stream()
    expected = [stream.step(f) for f in frames]
    stream = engine.stream()
    stream.step(frames[0])
    hook = engine.components.unet.register_forward_pre_hook(OutOfMemoryAt(1))
    try:  # frame 1 embeds the warped frame for the ControlNet, then the UNet fails
        with pytest.raises(torch.cuda.OutOfMemoryError):
            stream.step(frames[1])
    finally:
        hook.remove()
    assert torch.equal(stream.step(frames[1]), expected[1])
    assert torch.equal(stream.step(frames[2]), expected[2])


def test_out_of_memory_message_recommends_only_what_is_not_in_use() -> None:
    ours = out_of_memory_message(1280, 720, "bf16", "raft_large", 1.0)
    assert "1280x720 output" in ours and "precision='bf16'" in ours  # the settings, named once
    fixes = ours.split("; try ", 1)[1]
    assert "precision" not in fixes and "flow_scale" not in fixes and "a smaller clip" in fixes
    official = out_of_memory_message(1280, 720, "fp32", "raft_large", 4.0).split("; try ", 1)[1]
    assert "precision='bf16'" in official and "flow_scale=1" in official


def test_filter_out_of_memory_is_a_clear_error_and_the_next_frame_is_right(tiny_checkpoint: Path) -> None:
    data = pattern(3, 0)
    settings = {"model": str(tiny_checkpoint), "flow": "dis", "steps": 1}
    expected = [to_array(f) for f in stream_diffvsr(numpy_clip(data), **settings).frames()]
    out = stream_diffvsr(numpy_clip(data), **settings)
    vs.core.std.SetVideoCache(out, 0)
    unet = frame_server(out).engine.components.unet
    hook = unet.register_forward_pre_hook(OutOfMemoryAt(2))  # in frame 1 of the chain
    try:
        with pytest.raises(vs.Error, match=r"stream_diffvsr: frame 2: out of GPU memory at 128x96 output .*"):
            out.get_frame(2)
    finally:
        hook.remove()
    for n in (2, 1):
        np.testing.assert_array_equal(to_array(out.get_frame(n)), expected[n])


def test_compile_option_in_the_filter_and_the_presets() -> None:
    assert load_settings(None)["compile"] is False
    assert load_settings(None, ["compile=yes"])["compile"] is True
    blank = vs.core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=1)
    with pytest.raises(vs.Error, match="compile must be true or false"):
        stream_diffvsr(blank, model="tiny", compile="yes")


def inductor_unavailable() -> str | None:
    if not (shutil.which("g++") or shutil.which("gcc")):
        return "torch.compile (inductor) needs a C++ compiler on the CPU; none is on PATH"
    try:
        import torch._inductor  # noqa: F401
    except Exception as exc:  # a torch build without inductor
        return f"torch._inductor does not import: {exc}"
    return None


@pytest.mark.slow
@pytest.mark.skipif(inductor_unavailable() is not None, reason=str(inductor_unavailable()))
def test_compiled_networks_give_the_same_frames(tiny_checkpoint: Path, monkeypatch) -> None:
    # Reruns reuse the compiled kernels (about 2 minutes to compile cold on 2 busy cores, 15 s warm).
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).parent.parent / ".cache" / "inductor"))
    frames = clip(2, 16, 16)
    eager = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis", num_steps=1)
    compiled = StreamDiffVSR.from_pretrained(
        tiny_checkpoint, device="cpu", flow="dis", num_steps=1, compile=True
    )
    assert compiled.unet is not eager.unet and compiled.components is eager.components
    outputs = []
    for engine in (eager, compiled):
        stream = engine.stream()
        outputs.append([stream.step(f) for f in frames])
    for a, b in zip(*outputs, strict=True):
        # float32 reassociation only: measured max |difference| 1.5e-7 on [0, 1] outputs
        torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
