"""The ControlNet run on a conditioning embedding computed beforehand.

The embedding of the warped HR estimate does not depend on the timestep (about a quarter of a ControlNet call at
full size), so each frame computes it once (``embed_conditioning``) and passes it to every denoising step's
``ControlNetOnEmbedding`` call. Nothing is stored on the shared ``ControlNetModel``: the embedding is the frame's
own value, so engines and threads sharing one network never see each other's.
"""

from __future__ import annotations

import torch
from diffusers import ControlNetModel
from torch import nn

from .errors import ModelLoadError
from .strips import run_in_strips


def embed_conditioning(
    controlnet: ControlNetModel, cond: torch.Tensor, strip_bytes: int | None
) -> torch.Tensor:
    """``controlnet``'s conditioning embedding of ``cond``, in strips of about ``strip_bytes`` (see ``strips``)."""
    embedding = controlnet.controlnet_cond_embedding
    silu = nn.SiLU()  # the chain diffusers' forward runs: conv_in, SiLU, each block and SiLU, conv_out
    layers = [embedding.conv_in, silu]
    for block in embedding.blocks:
        layers += [block, silu]
    return run_in_strips([*layers, embedding.conv_out], cond, strip_bytes)


class ControlNetOnEmbedding(nn.Module):
    """diffusers' ``ControlNetModel.forward`` for this model (RGB conditioning, no class or added embeddings,
    conditioning scale 1, no guess mode) with the conditioning embedding as an input, built from the
    ControlNet's own submodules; the ControlNet is read, never changed."""

    def __init__(self, controlnet: ControlNetModel) -> None:
        super().__init__()
        config = controlnet.config
        unsupported = {
            "controlnet_conditioning_channel_order": config.controlnet_conditioning_channel_order != "rgb",
            "class_embed_type / num_class_embeds": controlnet.class_embedding is not None,
            "addition_embed_type": config.addition_embed_type is not None,
            "global_pool_conditions": bool(config.global_pool_conditions),
        }
        if any(unsupported.values()):
            names = ", ".join(name for name, bad in unsupported.items() if bad)
            raise ModelLoadError(f"ControlNet config not supported by this engine: {names}")
        self.controlnet = controlnet

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        encoder_hidden_states: torch.Tensor,
        embedding: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The residuals (down blocks, mid block) for the UNet, as ``ControlNetModel(sample, timestep,
        encoder_hidden_states, controlnet_cond, return_dict=False)`` gives them, ``embedding`` being
        ``controlnet.controlnet_cond_embedding(controlnet_cond)``."""
        net = self.controlnet
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        emb = net.time_embedding(net.time_proj(timesteps).to(dtype=sample.dtype), None)

        sample = net.conv_in(sample) + embedding
        residuals = (sample,)
        for block in net.down_blocks:
            if getattr(block, "has_cross_attention", False):
                sample, res = block(
                    hidden_states=sample, temb=emb, encoder_hidden_states=encoder_hidden_states
                )
            else:
                sample, res = block(hidden_states=sample, temb=emb)
            residuals += res
        if net.mid_block is not None:
            if getattr(net.mid_block, "has_cross_attention", False):
                sample = net.mid_block(sample, emb, encoder_hidden_states=encoder_hidden_states)
            else:
                sample = net.mid_block(sample, emb)
        down = [block(res) for res, block in zip(residuals, net.controlnet_down_blocks, strict=True)]
        return down, net.controlnet_mid_block(sample)
