"""Stream: the state one video needs between frames (previous LR frame, previous raw HR output, frame index,
and in "warped" noise mode the previous initial noise)."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from .color_fix import fix_colors
from .errors import FrameError
from .noise import chain_noise, latent_flow
from .options import MIN_SIDE, SCALE

PAD_MULTIPLE = 4


class FrameUpscaler(Protocol):
    """What a stream needs from the engine (``StreamDiffVSR``): where frames run, the noise settings, the flow
    and one step of the model."""

    device: torch.device
    dtype: torch.dtype
    seed: int
    noise: str
    color_fix: str

    def estimate_flow(self, lr: torch.Tensor, prev_lr: torch.Tensor) -> torch.Tensor: ...

    def upscale(
        self, lr: torch.Tensor, latents: torch.Tensor, previous: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor: ...


def pad_to_multiple(image: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Replicate-pad right/bottom so both sides are multiples of ``multiple`` (the output is cropped back)."""
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return image


def check_frame(lr: torch.Tensor) -> None:
    """A float RGB frame (1, 3, h, w) with sides of at least MIN_SIDE, or a FrameError saying what it is."""
    if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1] != 3 or not lr.is_floating_point():
        raise FrameError(
            f"expected a float RGB frame of shape (1, 3, h, w), got {tuple(lr.shape)} {lr.dtype}"
        )
    h, w = lr.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise FrameError(f"frame {w}x{h} is too small: each side must be at least {MIN_SIDE} pixels")


class Stream:
    """Stateful 4x upscaler for one video. Holds only what the next step needs, so memory stays constant."""

    def __init__(self, engine: FrameUpscaler) -> None:
        self.engine = engine
        self.reset()

    def reset(self) -> None:
        """Start a new temporal chain: the next frame runs without temporal guidance (as frame 0)."""
        self.index = 0
        self.prev_lr: torch.Tensor | None = None
        self.prev_hr: torch.Tensor | None = None
        self.prev_noise: torch.Tensor | None = None

    def step(self, lr: torch.Tensor, *, latents: torch.Tensor | None = None) -> torch.Tensor:
        """Upscale the next frame: RGB (1, 3, h, w) in [0, 1] -> (1, 3, 4h, 4w) float32 in [0, 1].

        ``latents`` (1, 4, h', w') overrides the initial noise, where h', w' are h, w rounded up to multiples of 4.
        """
        engine = self.engine
        check_frame(lr)
        h, w = lr.shape[-2:]
        # Contiguous whatever the caller's layout (a permuted image is a view): the state is then the stream's own
        # dense copy, which safetensors saves and which a loaded state reproduces exactly.
        lr_n = pad_to_multiple(lr.to(engine.device, torch.float32) * 2 - 1).contiguous()
        if self.prev_lr is not None and self.prev_lr.shape != lr_n.shape:
            raise FrameError(
                f"frame size changed from {self.prev_lr.shape[-1]}x{self.prev_lr.shape[-2]} (padded) to {w}x{h}; "
                "call reset() before a frame of another size"
            )
        noise_shape = (1, 4, *lr_n.shape[-2:])
        if latents is not None and tuple(latents.shape) != noise_shape:
            raise FrameError(f"latents must have shape {noise_shape}, got {tuple(latents.shape)}")
        flow = engine.estimate_flow(lr_n, self.prev_lr) if self.prev_lr is not None else None
        if latents is None:
            noise_flow = latent_flow(flow) if flow is not None and engine.noise == "warped" else None
            latents = chain_noise(
                engine.noise, engine.seed, self.index, noise_shape, self.prev_noise, noise_flow
            )
        raw = engine.upscale(lr_n, latents, (self.prev_hr, flow) if flow is not None else None)
        if engine.noise == "warped":
            self.prev_noise = latents.detach().to("cpu", torch.float32, copy=True)
        # Kept NCHW (the networks run channels_last): the state then has one layout whether it comes from the
        # live chain or from load_state_dict, so a resumed chain computes bit for bit what the live one would.
        self.prev_lr, self.prev_hr = lr_n, raw.contiguous()
        self.index += 1
        emitted = ((self.prev_hr[..., : h * SCALE, : w * SCALE].float() + 1) / 2).clamp_(0, 1)
        return fix_colors(engine.color_fix, emitted, lr.to(engine.device))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stream's state as plain contiguous tensors of its own, never views of the caller's frames
        (safetensors-serialisable; the live state itself: copy before changing in place): the frame index, and
        after the first frame of a chain the previous LR frame and raw HR output (absent for a fresh chain), plus
        in "warped" noise mode the previous frame's initial noise (what the next frame's noise is carried from)."""
        state = {"index": torch.tensor([self.index], dtype=torch.int64)}
        if self.prev_lr is not None:
            state["prev_lr"] = self.prev_lr
            state["prev_hr"] = self.prev_hr
        if self.prev_noise is not None:
            state["prev_noise"] = self.prev_noise
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Resume exactly where ``state_dict()`` was taken (tensors are copied to the engine's device)."""
        self.index = int(state["index"].item())
        if "prev_lr" in state:
            self.prev_lr = state["prev_lr"].to(self.engine.device, torch.float32, copy=True)
            self.prev_hr = state["prev_hr"].to(self.engine.device, self.engine.dtype, copy=True)
        else:
            self.prev_lr = self.prev_hr = None
        noise = state.get("prev_noise")
        self.prev_noise = noise.to("cpu", torch.float32, copy=True) if noise is not None else None
