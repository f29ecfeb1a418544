"""Strip-wise evaluation (CPU default) gives the whole-image result: for layer chains and through the engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamdiffvsr import StreamDiffVSR
from streamdiffvsr.controlnet import embed_conditioning
from streamdiffvsr.strips import is_local, run_in_strips


def local_chain() -> list[nn.Module]:
    """Every kind of local layer: 'same' convolutions of kernel 1, 3 and 5, strides 1 and 2, nearest upsampling,
    pointwise activations."""
    return [
        nn.Conv2d(3, 5, 3, padding=1),
        nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(5, 6, 3, padding=1, stride=2),
        nn.SiLU(),
        nn.Conv2d(6, 4, 5, padding=2),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(4, 2, 1),
        nn.Conv2d(2, 3, 3, padding=1, stride=2),
    ]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("height", [1, 7, 30])
def test_strips_equal_the_whole_image(layout, height):
    torch.manual_seed(height)
    layers = [layer.to(memory_format=layout) for layer in local_chain()]
    assert all(is_local(layer) for layer in layers)
    x = torch.randn(1, 3, height, 19).to(memory_format=layout)
    with torch.no_grad():
        whole = nn.Sequential(*layers)(x)
        for strip_bytes in (1, 700, 5000, None):  # one row per strip ... whole image
            torch.testing.assert_close(run_in_strips(layers, x, strip_bytes), whole, rtol=1e-5, atol=1e-6)


def test_non_local_layers_run_whole():
    layers = [nn.Conv2d(3, 3, 3, padding=1), nn.Upsample(scale_factor=2, mode="bilinear")]
    for layer in (
        layers[1],
        nn.Conv2d(3, 3, 3, padding=0),
        nn.Upsample(scale_factor=1.5),
        nn.Upsample(size=8),
    ):
        assert not is_local(layer)
    x = torch.randn(1, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(run_in_strips(layers, x, 1), nn.Sequential(*layers)(x))
        assert run_in_strips([], x, 1) is x


def test_engine_output_is_the_same_with_and_without_strips():
    engine = StreamDiffVSR.from_pretrained("nano", device="cpu")
    assert engine.strip_bytes is not None  # on by default on the CPU
    torch.manual_seed(0)
    base = torch.rand(1, 3, 40, 60)
    frames = [base[..., i : i + 32, 2 * i : 2 * i + 48] for i in range(3)]
    outputs = {}
    for strip_bytes in (None, 20_000):  # 20 kB: many strips of a few rows at 192x128
        engine.strip_bytes = strip_bytes
        stream = engine.stream()
        outputs[strip_bytes] = [stream.step(f) for f in frames]
    for whole, strips in zip(outputs[None], outputs[20_000], strict=True):
        torch.testing.assert_close(strips, whole, rtol=1e-5, atol=1e-5)


def test_conditioning_embedding_in_strips_matches_its_forward():
    controlnet = StreamDiffVSR.from_pretrained("nano", device="cpu").components.controlnet
    cond = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.inference_mode():
        in_strips = embed_conditioning(controlnet, cond, 3000)
        torch.testing.assert_close(
            in_strips, controlnet.controlnet_cond_embedding(cond), rtol=1e-5, atol=1e-6
        )
