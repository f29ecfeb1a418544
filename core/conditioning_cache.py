"""Reuse of ControlNet's conditioning embedding across the denoising steps of one frame."""

from __future__ import annotations

import torch
from torch import nn


class ReusedConditioningEmbedding(nn.Module):
    """Wraps ``ControlNetModel.controlnet_cond_embedding``.

    The embedding of the warped HR estimate does not depend on the timestep (about a quarter of a ControlNet
    call at full size), so while the same conditioning tensor comes back, its embedding is returned as computed.
    """

    def __init__(self, embedding: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        if cond is not self._input:
            self._input, self._output = cond, self.embedding(cond)
        return self._output

    def clear(self) -> None:
        self._input = self._output = None


def reuse_conditioning_embedding(controlnet: nn.Module) -> ReusedConditioningEmbedding:
    """Install (once) and return the reusing wrapper on a loaded ControlNet."""
    current = controlnet.controlnet_cond_embedding
    if not isinstance(current, ReusedConditioningEmbedding):
        current = ReusedConditioningEmbedding(current)
        controlnet.controlnet_cond_embedding = current
    return current
