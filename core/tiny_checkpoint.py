"""A tiny random-weight checkpoint in the official folder layout.

Used by the tests and as the embedded offline model ``"tiny"``: it loads through exactly the loader a real
checkpoint goes through. Its output is noise-like (a pipeline check, not an upscale). The ControlNet's zero
convolutions are made non-zero so the temporal path visibly changes the output.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

from .autoencoder_temporal_tiny import TemporalAutoencoderTiny
from .layout import (
    MODEL_INDEX,
    PROMPT_EMBEDS_FILE,
    PROMPT_EMBEDS_KEY,
    SD_X4_SCHEDULER,
    TRAINED_STEPS_KEY,
    cache_dir,
)

TINY_VERSION = 2  # 2: model_index.json says it was trained for no step count
EMBED_DIM = 32


def _tiny_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=7,
        out_channels=4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        down_block_types=(
            "DownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
        ),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        only_cross_attention=(True, True, True, False),
        cross_attention_dim=EMBED_DIM,
        attention_head_dim=8,
        use_linear_projection=True,
        norm_num_groups=32,
    )


def _randomize_zero_convs(controlnet: ControlNetModel, generator: torch.Generator) -> None:
    zero_init = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    zero_init.append(controlnet.controlnet_cond_embedding.conv_out)
    for conv in zero_init:
        conv.weight.data.normal_(0.0, 0.1, generator=generator)
        conv.bias.data.normal_(0.0, 0.1, generator=generator)


def build_tiny_checkpoint(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random checkpoint (official layout, plus ``flow/raft_large.safetensors``) to ``path``."""
    from torchvision.models.optical_flow import raft_large

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    unet = _tiny_unet()
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 32))
    _randomize_zero_convs(controlnet, generator)
    vae = TemporalAutoencoderTiny(
        encoder_block_out_channels=(16, 16, 16),
        decoder_block_out_channels=(16, 16, 16),
        block_out_channels=(16, 16, 16),
    )
    unet.save_pretrained(root / "unet")
    controlnet.save_pretrained(root / "controlnet")
    vae.save_pretrained(root / "vae")
    DDIMScheduler(**SD_X4_SCHEDULER).save_pretrained(root / "scheduler")
    save_file(
        {PROMPT_EMBEDS_KEY: torch.randn(1, 77, EMBED_DIM, generator=generator)}, root / PROMPT_EMBEDS_FILE
    )
    (root / "flow").mkdir(exist_ok=True)
    save_file(raft_large(weights=None).state_dict(), root / "flow" / "raft_large.safetensors")
    (root / "model_index.json").write_text(json.dumps({**MODEL_INDEX, TRAINED_STEPS_KEY: None}, indent=2))
    return root


def ensure_tiny_checkpoint() -> Path:
    """The embedded tiny checkpoint, built once into the cache (atomically, so parallel processes are safe)."""
    target = cache_dir() / f"tiny-v{TINY_VERSION}"
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    build_tiny_checkpoint(staging)
    try:
        os.rename(staging, target)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return target
