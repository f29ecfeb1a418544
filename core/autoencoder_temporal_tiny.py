"""TemporalAutoencoderTiny: the Stream-DiffVSR VAE (a TAESD-style autoencoder with temporal decoder blocks).

The module tree mirrors the official checkpoint's state-dict keys exactly (``encoder.layers.*``,
``decoder.layers.*``), so the official ``vae/`` folder loads with no missing or unexpected keys.
Temporal state is never stored on the modules: previous-frame features are passed to ``decode``,
so one instance can serve any number of streams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.activations import get_activation
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .strips import run_in_strips


class TemporalAutoencoderTinyBlock(nn.Module):
    """Residual conv block whose output can be nudged by the matching block's features of the previous frame."""

    def __init__(self, in_channels: int, out_channels: int, act_fn: str) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            get_activation(act_fn),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            get_activation(act_fn),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1, bias=False)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.fuse = nn.ReLU()
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.temporal_processor = nn.Sequential(
            nn.Conv1d(out_channels, out_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(out_channels, out_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv(x)
        if previous is not None:
            c = c + 0.1 * self._temporal_fusion(c, previous)
        return self.fuse(c + self.skip(x))

    def _temporal_fusion(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        cur = F.avg_pool2d(current, kernel_size=4, stride=4)
        prev = F.avg_pool2d(previous.to(current.dtype), kernel_size=4, stride=4)
        b, c, h, w = cur.shape
        # One sequence [current | previous]: the Conv1d kernel deliberately crosses the seam (trained that way).
        seq = self.temporal_processor(torch.cat([cur.flatten(2), prev.flatten(2)], dim=2))
        mixed = self.alpha * seq[..., : h * w] + (1 - self.alpha) * seq[..., h * w :]
        mixed = mixed.reshape(b, c, h, w)
        return F.interpolate(mixed, size=current.shape[-2:], mode="bilinear", align_corners=False)


def block_positions(layers: list[nn.Module]) -> list[int]:
    """Indices of the temporal blocks in a coder's layer list (the layers around them are plain convolutions)."""
    return [i for i, layer in enumerate(layers) if isinstance(layer, TemporalAutoencoderTinyBlock)]


class TemporalEncoderTiny(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: tuple[int, ...],
        channels: tuple[int, ...],
        act_fn: str,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (n, ch) in enumerate(zip(num_blocks, channels, strict=True)):
            if i == 0:
                layers.append(nn.Conv2d(in_channels, ch, 3, padding=1))
            else:
                layers.append(nn.Conv2d(ch, ch, 3, padding=1, stride=2, bias=False))
            layers.extend(TemporalAutoencoderTinyBlock(ch, ch, act_fn) for _ in range(n))
        layers.append(nn.Conv2d(channels[-1], out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x + 1) / 2)

    def block_features(self, x: torch.Tensor, strip_bytes: int | None = None) -> list[torch.Tensor]:
        """Outputs of every encoder block, in order, for an input fed in as is (no (x+1)/2 rescale).

        ``strip_bytes``: run the convolutions before the first block in strips of about that size."""
        layers = list(self.layers)
        blocks = block_positions(layers)
        if not blocks:
            return []
        x = run_in_strips(layers[: blocks[0]], x, strip_bytes)
        features = []
        for layer in layers[blocks[0] : blocks[-1] + 1]:
            x = layer(x)
            if isinstance(layer, TemporalAutoencoderTinyBlock):
                features.append(x)
        return features


class TemporalDecoderTiny(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: tuple[int, ...],
        channels: tuple[int, ...],
        upsampling_scaling_factor: int,
        act_fn: str,
        upsample_fn: str,
        latent_magnitude: float,
    ) -> None:
        super().__init__()
        self.latent_magnitude = latent_magnitude
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1), get_activation(act_fn)]
        for i, (n, ch) in enumerate(zip(num_blocks, channels, strict=True)):
            last = i == len(num_blocks) - 1
            layers.extend(TemporalAutoencoderTinyBlock(ch, ch, act_fn) for _ in range(n))
            if not last:
                layers.append(nn.Upsample(scale_factor=upsampling_scaling_factor, mode=upsample_fn))
            layers.append(nn.Conv2d(ch, out_channels if last else ch, 3, padding=1, bias=last))
        self.layers = nn.Sequential(*layers)

    def forward(
        self, z: torch.Tensor, previous: list[torch.Tensor] | None = None, strip_bytes: int | None = None
    ) -> torch.Tensor:
        x = torch.tanh(z / self.latent_magnitude) * self.latent_magnitude
        layers = list(self.layers)
        blocks = block_positions(layers)
        tail = blocks[-1] + 1 if blocks else 0
        block_index = 0
        for layer in layers[:tail]:
            if isinstance(layer, TemporalAutoencoderTinyBlock):
                x = layer(x, previous[block_index] if previous is not None else None)
                block_index += 1
            else:
                x = layer(x)
        return run_in_strips(layers[tail:], x, strip_bytes) * 2 - 1


class TemporalAutoencoderTiny(ModelMixin, ConfigMixin):
    """Tiny autoencoder (latent = image / 4 for three stages) with temporal feature fusion in the decoder."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        encoder_block_out_channels: tuple[int, ...] = (64, 64, 64),
        decoder_block_out_channels: tuple[int, ...] = (64, 64, 64),
        act_fn: str = "relu",
        upsample_fn: str = "nearest",
        latent_channels: int = 4,
        upsampling_scaling_factor: int = 2,
        num_encoder_blocks: tuple[int, ...] = (1, 3, 3),
        num_decoder_blocks: tuple[int, ...] = (3, 3, 1),
        latent_magnitude: int = 3,
        latent_shift: float = 0.5,
        force_upcast: bool = False,
        scaling_factor: float = 1.0,
        shift_factor: float = 0.0,
        block_out_channels: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if len(encoder_block_out_channels) != len(num_encoder_blocks):
            raise ValueError("encoder_block_out_channels and num_encoder_blocks must have the same length")
        if len(decoder_block_out_channels) != len(num_decoder_blocks):
            raise ValueError("decoder_block_out_channels and num_decoder_blocks must have the same length")
        if sum(num_encoder_blocks) != sum(num_decoder_blocks):
            raise ValueError(
                "the decoder needs one temporal feature per encoder block: block counts must match"
            )
        # Keys of diffusers' AutoencoderTiny config that the official file carries: checked, never silently
        # ignored. latent_shift only concerns AutoencoderTiny's latent (un)scaling for storage, which this model
        # never does; force_upcast is a pipeline hint (the engine picks the precision).
        if block_out_channels is not None and not (
            tuple(block_out_channels)
            == tuple(encoder_block_out_channels)
            == tuple(decoder_block_out_channels)
        ):
            raise ValueError(
                "block_out_channels (legacy) must equal the encoder and decoder block_out_channels"
            )
        if shift_factor != 0:
            raise ValueError(
                f"shift_factor {shift_factor} is not supported (the decoder takes z / scaling_factor)"
            )
        self.encoder = TemporalEncoderTiny(
            in_channels, latent_channels, tuple(num_encoder_blocks), tuple(encoder_block_out_channels), act_fn
        )
        self.decoder = TemporalDecoderTiny(
            latent_channels,
            out_channels,
            tuple(num_decoder_blocks),
            tuple(decoder_block_out_channels),
            upsampling_scaling_factor,
            act_fn,
            upsample_fn,
            latent_magnitude,
        )

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> latent (unscaled)."""
        return self.encoder(image)

    def temporal_features(
        self, warped_previous: torch.Tensor, strip_bytes: int | None = None
    ) -> list[torch.Tensor]:
        """Encoder block outputs of the warped previous HR estimate, reversed to line up with the decoder blocks.

        ``strip_bytes`` (here and in ``decode``): run the full-resolution convolutions in horizontal strips of
        about that many bytes (same result, less memory traffic; see ``strips``); None: whole images."""
        return self.encoder.block_features(warped_previous, strip_bytes)[::-1]

    def decode(
        self,
        latents: torch.Tensor,
        temporal_features: list[torch.Tensor] | None = None,
        strip_bytes: int | None = None,
    ) -> torch.Tensor:
        """Latent -> raw image in about [-1, 1] (not clamped)."""
        return self.decoder(latents, temporal_features, strip_bytes)
