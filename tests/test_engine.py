"""Engine tests on the CPU with the tiny random checkpoint, loaded through the real loader."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel
from safetensors.torch import load_file, save_file

from streamdiffvsr import FrameError, ModelLoadError, StreamDiffVSR, TemporalAutoencoderTiny
from streamdiffvsr.controlnet import ControlNetOnEmbedding, embed_conditioning
from streamdiffvsr.flow import DisFlow, FlowEstimator
from streamdiffvsr.stream import pad_to_multiple
from streamdiffvsr.warp import warp


def textured(h: int, w: int, dx: float = 0.0, dy: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A smooth random texture sampled at (x + dx, y + dy): shifting it is an exact known motion."""
    rng = np.random.default_rng(seed)
    ys, xs = np.meshgrid(np.arange(h) + dy, np.arange(w) + dx, indexing="ij")
    img = np.zeros((3, h, w))
    for c in range(3):
        for _ in range(6):
            fx, fy, phase = rng.uniform(0.03, 0.15), rng.uniform(0.03, 0.15), rng.uniform(0, 6.3)
            img[c] += np.sin(fx * xs + fy * ys + phase)
    img = (img - img.min()) / (img.max() - img.min())
    return torch.from_numpy(img).float()[None]


def clip(n: int, h: int = 24, w: int = 32) -> list[torch.Tensor]:
    return [textured(h, w, dx=1.5 * i, dy=0.5 * i) for i in range(n)]


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> StreamDiffVSR:
    return StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis")


def run(engine: StreamDiffVSR, frames: list[torch.Tensor]) -> list[torch.Tensor]:
    stream = engine.stream()
    return [stream.step(f) for f in frames]


# The autoencoder's module tree is the checkpoint's key set.


def test_vae_module_tree_matches_official_keys(tmp_path):
    vae = TemporalAutoencoderTiny()  # defaults = the official vae/config.json
    keys = set(vae.state_dict())
    for key in [
        "encoder.layers.0.weight",
        "encoder.layers.0.bias",
        "encoder.layers.1.conv.4.weight",
        "encoder.layers.1.alpha",
        "encoder.layers.1.temporal_processor.2.weight",
        "encoder.layers.2.weight",
        "encoder.layers.10.weight",
        "decoder.layers.0.weight",
        "decoder.layers.2.temporal_processor.0.bias",
        "decoder.layers.13.weight",
        "decoder.layers.13.bias",
    ]:
        assert key in keys
    assert "encoder.layers.2.bias" not in keys  # stride-2 convs have no bias
    assert "decoder.layers.6.bias" not in keys  # only the last decoder conv has a bias
    assert vae.state_dict()["encoder.layers.1.alpha"].shape == ()
    assert sum(p.numel() for p in vae.parameters()) == pytest.approx(2.05e6, rel=0.02)
    vae.save_pretrained(tmp_path / "vae")
    loaded, info = TemporalAutoencoderTiny.from_pretrained(tmp_path / "vae", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert all(
        torch.equal(a, b)
        for a, b in zip(vae.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_checkpoint_vae_loads_without_missing_keys(tiny_checkpoint):
    _, info = TemporalAutoencoderTiny.from_pretrained(tiny_checkpoint / "vae", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []


@pytest.mark.slow
def test_vae_latent_is_quarter_size():
    vae = TemporalAutoencoderTiny(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8))
    image = torch.rand(1, 3, 48, 64) * 2 - 1
    latent = vae.encode(image)
    assert latent.shape == (1, 4, 12, 16)
    features = vae.temporal_features(image)
    assert [f.shape[-1] for f in features] == [16, 16, 16, 32, 32, 32, 64]
    assert vae.decode(latent, features).shape == image.shape


# Warp convention and flow.


def test_zero_flow_is_not_identity_but_integer_shift_is_undone():
    image = textured(96, 128) * 2 - 1
    zero = torch.zeros(1, 2, 96, 128)
    assert not torch.allclose(warp(image, zero), image, atol=1e-3)
    shifted = textured(96, 128, dx=3, dy=-2) * 2 - 1  # shifted(x) = image(x + (3, -2))
    flow = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 96, 128)
    inner = (..., slice(8, -8), slice(8, -8))
    error = (warp(image, flow) - shifted)[inner].abs().mean()
    assert error < 0.2 * (image - shifted)[inner].abs().mean()


def test_bf16_warp_is_finite():
    # CPU grid_sample in bfloat16 returns NaNs at this size; warp samples in float32.
    torch.manual_seed(0)
    image, flow = torch.rand(1, 3, 192, 256) * 2 - 1, torch.randn(1, 2, 192, 256) * 3
    warped = warp(image.bfloat16(), flow)
    assert warped.dtype == torch.bfloat16 and torch.isfinite(warped).all()
    torch.testing.assert_close(warped.float(), warp(image, flow), rtol=0, atol=1e-2)


def test_dis_flow_recovers_subpixel_translation():
    current, previous = textured(96, 128, dx=1.5, dy=-0.75), textured(96, 128)  # current(x) = previous(x + d)
    flow = DisFlow()(current * 2 - 1, previous * 2 - 1)[0, :, 16:-16, 16:-16]
    assert flow[0].median().item() == pytest.approx(1.5, abs=0.15)
    assert flow[1].median().item() == pytest.approx(-0.75, abs=0.15)


def test_lr_flow_is_scaled_to_output_resolution():
    current, previous = textured(48, 64, dx=1.0, dy=0.5) * 2 - 1, textured(48, 64) * 2 - 1
    hr = FlowEstimator(DisFlow(), scale=1, upscale=4)(current, previous)
    assert hr.shape == (1, 2, 192, 256)
    assert hr[0, 0, 32:-32, 32:-32].median().item() == pytest.approx(4.0, abs=0.5)
    assert hr[0, 1, 32:-32, 32:-32].median().item() == pytest.approx(2.0, abs=0.5)


# The stream.


@pytest.mark.slow
def test_output_shape_range_and_determinism(tiny_checkpoint, engine):
    frames = clip(3)
    first = run(engine, frames)
    again = run(StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis"), frames)
    for a, b in zip(first, again, strict=True):
        assert a.shape == (1, 3, 96, 128) and a.dtype == torch.float32
        assert a.min() >= 0 and a.max() <= 1
        assert torch.equal(a, b)
    other_seed = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis", seed=1)
    assert not torch.equal(run(other_seed, frames)[0], first[0])


@pytest.mark.slow
def test_temporal_path_changes_later_frames(engine):
    frames = clip(2)
    chained = run(engine, frames)
    fresh = engine.stream()
    fresh.step(frames[0])
    fresh.reset()
    fresh.index = 1  # same initial noise as frame 1 of the chain: only the temporal guidance differs
    assert (chained[1] - fresh.step(frames[1])).abs().max() > 1e-3


def test_controlnet_on_the_embedding_is_the_diffusers_forward(engine):
    controlnet, embeds = engine.components.controlnet, engine.components.prompt_embeds
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 7, 24, 32, generator=generator)
    cond = torch.rand(1, 3, 96, 128, generator=generator) * 2 - 1
    with torch.inference_mode():
        embedding = embed_conditioning(controlnet, cond, None)
        for t in (engine.timesteps[1], 249):
            down, mid = controlnet(
                sample, t, encoder_hidden_states=embeds, controlnet_cond=cond, return_dict=False
            )
            ours_down, ours_mid = ControlNetOnEmbedding(controlnet)(sample, t, embeds, embedding)
            assert len(ours_down) == len(down)
            for expected, ours in zip([*down, mid], [*ours_down, ours_mid], strict=True):
                assert torch.equal(ours, expected)


@pytest.mark.slow
def test_engines_sharing_the_networks_in_threads_leave_them_unchanged(tiny_checkpoint):
    settings = {"device": "cpu", "flow": "dis", "num_steps": 2}
    engines = [StreamDiffVSR.from_pretrained(tiny_checkpoint, seed=seed, **settings) for seed in (0, 1)]
    shared = engines[0].components
    assert engines[1].components is shared
    clips = [clip(3), clip(3)[::-1]]
    expected = [run(e, frames) for e, frames in zip(engines, clips, strict=True)]
    with ThreadPoolExecutor(2) as pool:  # two streams' frames interleave on the shared networks
        results = list(pool.map(run, engines * 2, clips * 2))
    for ours, reference in zip(results, expected * 2, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(ours, reference, strict=True))
    fresh = ControlNetModel.from_pretrained(tiny_checkpoint, subfolder="controlnet")
    assert [(n, type(m)) for n, m in shared.controlnet.named_modules()] == [
        (n, type(m)) for n, m in fresh.named_modules()
    ]
    assert vars(shared.controlnet).keys() == vars(fresh).keys()


@pytest.mark.slow
def test_checkpoint_and_resume_is_exact(engine, tmp_path):
    frames = clip(5)
    reference = run(engine, frames)
    stream = engine.stream()
    for f in frames[:2]:
        stream.step(f)
    save_file(stream.state_dict(), tmp_path / "state.safetensors")
    resumed = engine.stream()
    resumed.load_state_dict(load_file(tmp_path / "state.safetensors"))
    for f, expected in zip(frames[2:], reference[2:], strict=True):
        assert torch.equal(resumed.step(f), expected)
    fresh_state = engine.stream().state_dict()
    restarted = engine.stream()
    restarted.load_state_dict(fresh_state)
    assert torch.equal(restarted.step(frames[0]), reference[0])


@pytest.mark.slow
def test_warped_noise_resumes_exactly(tiny_checkpoint, tmp_path):
    engine = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis", noise="warped")
    frames = clip(5)
    reference = run(engine, frames)
    stream = engine.stream()
    for f in frames[:3]:
        stream.step(f)
    assert set(stream.state_dict()) == {"index", "prev_lr", "prev_hr", "prev_noise"}
    save_file(stream.state_dict(), tmp_path / "state.safetensors")
    resumed = engine.stream()
    resumed.load_state_dict(load_file(tmp_path / "state.safetensors"))
    for f, expected in zip(frames[3:], reference[3:], strict=True):
        assert torch.equal(resumed.step(f), expected)


@pytest.mark.slow
def test_noise_modes_share_frame_zero_and_differ_after(tiny_checkpoint):
    frames = clip(3)
    outputs = {
        mode: run(
            StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis", noise=mode), frames
        )
        for mode in ("fresh", "fixed", "warped")
    }
    assert torch.equal(outputs["fresh"][0], outputs["fixed"][0])
    assert torch.equal(outputs["fresh"][0], outputs["warped"][0])
    for a, b in [("fresh", "fixed"), ("fixed", "warped"), ("fresh", "warped")]:
        assert not torch.equal(outputs[a][2], outputs[b][2]), (a, b)
    with pytest.raises(ValueError, match="noise must be one of fresh, fixed, warped, got 'frozen'"):
        StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="none", noise="frozen")


def test_odd_sizes_are_padded_not_resized(tiny_checkpoint):
    """The model's output of an odd frame is its padded frame's, cropped (without the colour fix, which
    follows each frame's own upscale to its edges)."""
    engine = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="dis", color_fix="none")
    odd = textured(21, 30)
    out = engine.stream().step(odd)
    assert out.shape == (1, 3, 84, 120)
    padded = pad_to_multiple(odd)
    assert padded.shape[-2:] == (24, 32)
    assert torch.equal(engine.stream().step(padded)[..., :84, :120], out)


def test_explicit_latents_override_noise(engine):
    frame = clip(1)[0]
    latents = torch.randn(1, 4, 24, 32, generator=torch.Generator().manual_seed(7))
    a, b = engine.stream().step(frame, latents=latents), engine.stream().step(frame, latents=latents)
    assert torch.equal(a, b)
    assert not torch.equal(a, engine.stream().step(frame))
    with pytest.raises(FrameError, match="latents must have shape"):
        engine.stream().step(frame, latents=torch.zeros(1, 4, 8, 8))


def test_bad_frames_raise_clear_errors(engine):
    stream = engine.stream()
    with pytest.raises(FrameError, match="at least 16"):
        stream.step(torch.rand(1, 3, 12, 32))
    with pytest.raises(FrameError, match=r"shape \(1, 3, h, w\)"):
        stream.step(torch.rand(3, 24, 32))
    stream.step(torch.rand(1, 3, 24, 32))
    with pytest.raises(FrameError, match="reset"):
        stream.step(torch.rand(1, 3, 32, 32))


def test_timestep_spacing_from_config_and_override(tiny_checkpoint):
    trailing = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow="none")
    assert trailing.timesteps.tolist() == [999, 749, 499, 249]
    leading = StreamDiffVSR.from_pretrained(
        tiny_checkpoint, device="cpu", flow="none", timestep_spacing="leading"
    )
    assert leading.timesteps.tolist() == [751, 501, 251, 1]


def test_reduced_precision_keeps_raft_in_float32(tiny_checkpoint):
    engine = StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", dtype="bf16", flow="raft_large")
    assert next(engine.flow.backend.model.parameters()).dtype == torch.float32
    outputs = run(engine, clip(2, 16, 16))
    assert outputs[1].dtype == torch.float32 and outputs[1].shape == (1, 3, 64, 64)


def test_loader_errors_name_the_problem(tmp_path, tiny_checkpoint):
    with pytest.raises(ModelLoadError, match="no such checkpoint folder"):
        StreamDiffVSR.from_pretrained(tmp_path / "missing", device="cpu")
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache"):
        StreamDiffVSR.from_pretrained("nobody/not-a-model", device="cpu")
    with pytest.raises(ModelLoadError, match="flow_weights"):
        StreamDiffVSR.from_pretrained(tiny_checkpoint, device="cpu", flow_weights=tmp_path / "nope.pth")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="could not load"):
        StreamDiffVSR.from_pretrained(broken, device="cpu", flow="none")


@pytest.mark.slow
def test_memory_is_constant_over_frames(engine):
    def rss_mib() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    stream, frame = engine.stream(), clip(1, 16, 16)[0]
    for i in range(200):
        stream.step(frame)
        if i == 19:
            after_20 = rss_mib()
    assert rss_mib() - after_20 < 8
    assert set(stream.state_dict()) == {"index", "prev_lr", "prev_hr"}


@pytest.mark.slow
def test_prompt_embedding_is_computed_from_the_text_encoder_once(tmp_path, tiny_checkpoint, monkeypatch):
    import json

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from streamdiffvsr.checkpoint import PROMPT_EMBEDS_FILE, load_prompt_embeds

    root = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint, root)
    (root / PROMPT_EMBEDS_FILE).unlink()
    (tmp_path / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(root / "tokenizer")
    config = CLIPTextConfig(
        vocab_size=3,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(config).eval()
    text_encoder.save_pretrained(root / "text_encoder")
    monkeypatch.setenv("STREAMDIFFVSR_CACHE", str(tmp_path / "cache"))

    embeds = load_prompt_embeds(root)
    ids = tokenizer("", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.inference_mode():
        assert torch.equal(embeds, text_encoder(ids)[0])
    assert len(list((tmp_path / "cache" / "prompt_embeds").glob("*.safetensors"))) == 1
    (root / "text_encoder" / "model.safetensors").unlink()  # the cached embedding is used from now on
    assert torch.equal(load_prompt_embeds(root), embeds)
    StreamDiffVSR.from_pretrained(root, device="cpu", flow="none").stream().step(clip(1)[0])


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "/x/th"}, {"XDG_CACHE_HOME": "/x/xdg"}])
def test_raft_files_are_found_where_torch_and_torchvision_put_them(env, monkeypatch):
    """``locate`` names torchvision's RAFT files without importing torch: the same path torch.hub would use."""
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    from streamdiffvsr.locate import raft_file

    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for variant, weights in (("raft_large", Raft_Large_Weights), ("raft_small", Raft_Small_Weights)):
        expected = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.DEFAULT.url)
        assert raft_file(variant) == expected


@pytest.mark.slow
def test_state_of_permuted_frames_saves_loads_and_resumes_exactly(tmp_path):
    """Frames made the usual way from an image (HWC array, ``permute(2, 0, 1)[None]``: a non-contiguous view)
    leave a state safetensors can save (issue 25, item 9), and resuming from it is exact; nano on the CPU."""
    engine = StreamDiffVSR.from_pretrained("nano", device="cpu")
    frames = [torch.from_numpy(f[0].permute(1, 2, 0).numpy().copy()).permute(2, 0, 1)[None] for f in clip(5)]
    assert not frames[0].is_contiguous()
    reference = run(engine, frames)
    stream = engine.stream()
    for f in frames[:2]:
        stream.step(f)
    state = stream.state_dict()
    assert all(tensor.is_contiguous() for tensor in state.values())
    save_file(state, tmp_path / "state.safetensors")
    resumed = engine.stream()
    resumed.load_state_dict(load_file(tmp_path / "state.safetensors"))
    for f, expected in zip(frames[2:], reference[2:], strict=True):
        assert torch.equal(resumed.step(f), expected)
    contiguous = run(engine, [f.contiguous() for f in frames])  # the layout the caller chose changes nothing
    assert all(torch.equal(a, b) for a, b in zip(contiguous, reference, strict=True))
