"""The trained "nano" checkpoint through the real loader and engine: it must beat bicubic on held-out frames.

A regression in the engine that breaks real weights (step order, warp convention, decoder features, scheduler
spacing, ...) turns the output into noise or blur and fails here. The frames come from a crop of a photo held out
of training (tests/data, public domain: NASA portrait from scikit-image's data), moved by a known motion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamdiffvsr import StreamDiffVSR
from streamdiffvsr.flow import DisFlow
from streamdiffvsr.training.nano_data import bicubic_up, load_photo, make_clip, psnr_y, read_rgb

PHOTO = Path(__file__).parent / "data" / "nano_heldout_astronaut.png"
MARGIN_DB = 1.0


@pytest.fixture(scope="module")
def nano() -> StreamDiffVSR:
    return StreamDiffVSR.from_pretrained("nano", device="cpu")


@pytest.fixture(scope="module")
def clip():
    return make_clip(read_rgb(PHOTO), np.random.default_rng(3), 160, 192, 4)


def test_nano_is_the_official_layout(nano: StreamDiffVSR) -> None:
    root = nano.components.root
    for folder in ("unet", "controlnet", "vae", "scheduler"):
        assert (root / folder / "config.json").is_file() or (
            root / folder / "scheduler_config.json"
        ).is_file()
    assert nano.components.unet.config.in_channels == 7
    assert [int(t) for t in nano.timesteps] == [999, 749, 499, 249]
    size = sum(f.stat().st_size for f in root.rglob("*.safetensors"))
    assert size < 20 * 2**20
    # flow="auto" runs the flow nano was trained with, which needs no weights.
    assert isinstance(nano.flow.backend, DisFlow)


def test_nano_beats_bicubic_streaming(nano: StreamDiffVSR, clip) -> None:
    stream = nano.stream()
    ours, bicubic = [], []
    for lr, hr in zip(clip.lr, clip.hr, strict=True):
        out = stream.step(lr)
        assert out.shape == hr.shape
        ours.append(psnr_y(out, hr))
        bicubic.append(psnr_y(bicubic_up(lr), hr))
    gain = float(np.mean(ours) - np.mean(bicubic))
    assert gain > MARGIN_DB, f"nano {np.mean(ours):.2f} dB vs bicubic {np.mean(bicubic):.2f} dB"
    # Every frame, including the guided ones, beats bicubic: the temporal path does not break the output.
    assert all(o > b for o, b in zip(ours, bicubic, strict=True)), (ours, bicubic)


def test_nano_frame_zero_matches_a_fresh_stream(nano: StreamDiffVSR, clip) -> None:
    with torch.inference_mode():
        a = nano.stream().step(clip.lr[0])
        b = nano.stream().step(clip.lr[0])
    assert torch.equal(a, b)


def test_a_missing_photo_folder_is_one_line_naming_the_package(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        load_photo("mate:nature/Aqua.jpg", tmp_path)
    message = str(exc.value)
    assert str(tmp_path / "nature" / "Aqua.jpg") in message
    assert "apt-get install mate-backgrounds" in message and "--photos" in message
    assert "\n" not in message
