"""The nano architecture (the official classes at small widths) and the engine that runs it while it trains.

The networks are the engine's own: diffusers ``UNet2DConditionModel`` (7 input channels) and ``ControlNetModel``
(from the UNet), ``TemporalAutoencoderTiny`` (latent at HR/4) and the SD x4 ``DDIMScheduler`` (v-prediction,
trailing spacing: t = 999, 749, 499, 249). ``NanoModels.engine`` is a ``StreamDiffVSR`` around the networks being
trained: training runs the engine's own guidance, denoising and decoding with autograd on, so what is trained is
what the engine runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

from streamdiffvsr.autoencoder_temporal_tiny import TemporalAutoencoderTiny
from streamdiffvsr.checkpoint import Components
from streamdiffvsr.engine import StreamDiffVSR
from streamdiffvsr.flow import DisFlow, FlowEstimator
from streamdiffvsr.layout import (
    DEFAULT_FLOW_KEY,
    MODEL_INDEX,
    PROMPT_EMBEDS_FILE,
    PROMPT_EMBEDS_KEY,
    SD_X4_SCHEDULER,
    TRAINED_STEPS_KEY,
)
from streamdiffvsr.options import SCALE

EMBED_DIM = 32
NUM_STEPS = 4
# Two UNet levels: the UNet mostly carries the LR frame into the latent; a third level cost 25% of the frame
# time on 2 CPU cores for no measurable gain.
UNET_CHANNELS = (8, 16)
CONDITIONING_CHANNELS = (4, 8, 16)
VAE_CHANNELS = 16
# All decoder blocks at the latent (LR) grid, where they are cheap; the two upsampling stages are one conv each.
# The temporal features then all come from the encoder's quarter-resolution blocks (counts line up reversed).
ENCODER_BLOCKS = (0, 0, 5)
DECODER_BLOCKS = (5, 0, 0)


def build_unet() -> UNet2DConditionModel:
    n = len(UNET_CHANNELS)
    # No attention blocks: self-attention over a 320x180 latent is far too slow on a CPU, and cross-attention to
    # a constant prompt adds nothing a bias cannot do. The prompt embedding is still shipped and passed.
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=7,
        out_channels=4,
        block_out_channels=UNET_CHANNELS,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        mid_block_type="UNetMidBlock2D",
        cross_attention_dim=EMBED_DIM,
        attention_head_dim=8,
        norm_num_groups=4,
    )


def build_vae() -> TemporalAutoencoderTiny:
    return TemporalAutoencoderTiny(
        encoder_block_out_channels=(VAE_CHANNELS,) * 3,
        decoder_block_out_channels=(VAE_CHANNELS,) * 3,
        num_encoder_blocks=ENCODER_BLOCKS,
        num_decoder_blocks=DECODER_BLOCKS,
    )


def build_controlnet(unet: UNet2DConditionModel) -> ControlNetModel:
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONDITIONING_CHANNELS)


def build_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SD_X4_SCHEDULER)


def prompt_embeds() -> torch.Tensor:
    """The nano model has no text encoder: its "empty-prompt embedding" is a fixed zero tensor."""
    return torch.zeros(1, 77, EMBED_DIM)


class NanoModels(torch.nn.Module):
    """The networks being trained, and ``engine``: the engine that runs them (CPU, fp32, DIS flow on the LR
    frames, whole images)."""

    def __init__(self) -> None:
        super().__init__()
        self.unet = build_unet()
        self.controlnet = build_controlnet(self.unet)
        self.vae = build_vae()
        init_autoencoder(self.vae)
        self.register_buffer("prompt_embeds", prompt_embeds(), persistent=False)
        self.scheduler = build_scheduler()
        self.engine = self._engine()
        self.timesteps = [int(t) for t in self.engine.timesteps]

    def _engine(self) -> StreamDiffVSR:
        components = Components(
            None, self.unet, self.controlnet, self.vae, self.prompt_embeds, torch.device("cpu"), torch.float32
        )
        flow = FlowEstimator(DisFlow(), 1.0, SCALE)
        return StreamDiffVSR(components, self.scheduler, flow, num_steps=NUM_STEPS, strips=False)

    def restart_controlnet(self) -> None:
        """A new ControlNet, copied from the current UNet (the start of stage 3)."""
        self.controlnet = build_controlnet(self.unet).to(memory_format=torch.channels_last)
        self.engine = self._engine()


def save_checkpoint(models: NanoModels, root: str | Path, note: str = "") -> Path:
    """Write the official folder layout (fp32 safetensors) plus the fixed prompt embedding."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    models.unet.save_pretrained(root / "unet")
    models.controlnet.save_pretrained(root / "controlnet")
    models.vae.save_pretrained(root / "vae")
    build_scheduler().save_pretrained(root / "scheduler")
    save_file({PROMPT_EMBEDS_KEY: prompt_embeds().contiguous()}, root / PROMPT_EMBEDS_FILE)
    # Trained with DIS flow on the LR frames (no RAFT weights offline): what flow="auto" picks for it; and for
    # NUM_STEPS steps per frame (the CLI warns when a preset runs it with another count).
    index = {**MODEL_INDEX, DEFAULT_FLOW_KEY: "dis", TRAINED_STEPS_KEY: NUM_STEPS}
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    if note:
        (root / "README.md").write_text(note)
    return root


def _identity_init(conv: torch.nn.Conv2d, kernel: torch.Tensor, channels: int, noise: float) -> None:
    """Shrink the random init and add ``kernel`` on the first ``channels`` diagonal entries (a per-channel
    filter), so that the layer starts as that filter on those channels."""
    with torch.no_grad():
        conv.weight.mul_(noise)
        for i in range(channels):
            conv.weight[i, i] += kernel
        if conv.bias is not None:
            conv.bias.zero_()


def init_autoencoder(vae: TemporalAutoencoderTiny) -> None:
    """Start the autoencoder near "blur, subsample / upsample, blur" on the first three channels.

    The encoder's and the decoder's resampling convs have no activation between them: a chain of linear layers
    at the default init learns slowly on a CPU budget. This init makes the latent start as the (x + 1) / 2
    image downscaled 4x (channels 0-2) and the decoder as its upscale; blocks start near identity.
    """
    from streamdiffvsr.autoencoder_temporal_tiny import TemporalAutoencoderTinyBlock

    tent = torch.tensor([1.0, 2.0, 1.0])
    tent = torch.outer(tent, tent) / 16
    delta = torch.zeros(3, 3)
    delta[1, 1] = 1
    for coder in (vae.encoder, vae.decoder):
        convs = [m for m in coder.layers if isinstance(m, torch.nn.Conv2d)]
        for conv in convs:
            channels = min(conv.in_channels, conv.out_channels)
            resample = conv.stride == (2, 2) or (
                conv.in_channels == conv.out_channels and coder is vae.decoder
            )
            _identity_init(conv, tent if resample else delta, channels, 0.3)
        for block in coder.layers:
            if isinstance(block, TemporalAutoencoderTinyBlock):
                with torch.no_grad():
                    block.conv[-1].weight.mul_(0.1)
                    block.conv[-1].bias.zero_()
