"""StreamDiffVSR: the causal four-step diffusion upscaler, one frame at a time at constant memory."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import SchedulerMixin

from .checkpoint import Components, load_components, load_scheduler, resolve_dtype
from .controlnet import ControlNetOnEmbedding, embed_conditioning
from .errors import ModelLoadError
from .flow import FlowEstimator, make_flow_backend
from .locate import resolve_checkpoint, resolve_flow
from .options import (
    AUTO_FLOW,
    DEFAULT_COLOR_FIX,
    DEFAULT_COMPILE,
    DEFAULT_COMPILE_MODE,
    DEFAULT_FLOW_SCALE,
    DEFAULT_MODEL,
    DEFAULT_NOISE,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    SCALE,
    check_options,
    default_precision,
    resolve_device,
    use_tf32,
)
from .profiling import StageTimer
from .stream import Stream
from .strips import default_strip_bytes
from .warp import warp


def ddim_rollout(
    unet: torch.nn.Module,
    controlnet: torch.nn.Module,
    scheduler,
    timesteps,
    lr: torch.Tensor,
    z: torch.Tensor,
    prompt_embeds: torch.Tensor,
    embed: Callable[[], torch.Tensor] | None = None,
    before_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The denoising of one frame (docs/algorithm.md, "The per-frame step", step 6): DDIM (eta 0) from ``z`` over
    ``timesteps``, the UNet fed ``[z, lr]`` and, when ``embed`` is given, the residuals of ``controlnet``
    (a ``ControlNetOnEmbedding``) for the conditioning embedding ``embed()`` returns at each step."""
    for t in timesteps:
        if before_step is not None:
            before_step()
        sample = torch.cat([z, lr], dim=1)
        down, mid = controlnet(sample, t, prompt_embeds, embed()) if embed is not None else (None, None)
        noise_pred = unet(
            sample,
            t,
            encoder_hidden_states=prompt_embeds,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]
        z = scheduler.step(noise_pred, t, z, eta=0.0, return_dict=False)[0]
    return z


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for float32 matmuls and cuDNN convolutions while inside (restored after); nothing when disabled."""
    if not enabled:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def upload(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``: to CUDA from page-locked memory without blocking the host (the caching host
    allocator keeps the pinned block until the copy is done)."""
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass(frozen=True)
class TemporalGuidance:
    """What frame t borrows from frame t-1: the warped raw HR estimate, its encoder features and the ControlNet's
    embedding of it (None: embedded again at every step, as the official pipeline does)."""

    warped: torch.Tensor
    features: list[torch.Tensor]
    embedding: torch.Tensor | None


class StreamDiffVSR:
    """A loaded checkpoint plus the flow estimator and sampling settings; ``stream()`` gives a stateful upscaler."""

    scale = SCALE

    def __init__(
        self,
        components: Components,
        scheduler,
        flow: FlowEstimator,
        *,
        num_steps: int = DEFAULT_STEPS,
        seed: int = DEFAULT_SEED,
        noise: str = DEFAULT_NOISE,
        color_fix: str = DEFAULT_COLOR_FIX,
        reuse_conditioning: bool = True,
        strips: bool = True,
        compile: bool = DEFAULT_COMPILE,
        compile_mode: str = DEFAULT_COMPILE_MODE,
    ) -> None:
        self.components = components
        self.scheduler = scheduler
        self.flow = flow
        self.num_steps = num_steps
        self.seed = seed
        self.noise = noise
        self.color_fix = color_fix
        self.device = components.device
        self.dtype = components.dtype
        scheduler.set_timesteps(num_steps, device=self.device)
        self.timesteps = scheduler.timesteps.clone()
        self.reuse_conditioning = reuse_conditioning
        # Full-resolution convolutions in horizontal strips (CPU only): same output, less memory traffic.
        self.strip_bytes = default_strip_bytes(self.device) if strips else None
        self.timer: StageTimer | None = None
        self.tf32 = use_tf32(self.device.type)
        self.unet, self.controlnet = components.unet, ControlNetOnEmbedding(components.controlnet)
        # CUDA graphs: each DDIM step starts a new generation (the previous step's outputs are consumed).
        self.before_step = None
        if compile:
            self.compile_networks(compile_mode)

    def compile_networks(self, mode: str = DEFAULT_COMPILE_MODE) -> None:
        """torch.compile this engine's UNet and ControlNet calls for a fixed frame size (``dynamic=False``: a
        new size compiles again). The shared networks stay as they are for other engines."""
        c = self.components
        self.unet = torch.compile(c.unet, mode=mode, dynamic=False)
        self.controlnet = torch.compile(ControlNetOnEmbedding(c.controlnet), mode=mode, dynamic=False)
        uses_graphs = self.device.type == "cuda" and mode in ("reduce-overhead", "max-autotune")
        self.before_step = torch.compiler.cudagraph_mark_step_begin if uses_graphs else None

    def profile(self) -> StageTimer:
        """Start accounting seconds per stage (flow, guidance, denoise, decode); returns the timer."""
        self.timer = StageTimer(self.device)
        return self.timer

    def _stage(self, name: str):
        return self.timer(name) if self.timer is not None else nullcontext()

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike = DEFAULT_MODEL, **settings) -> StreamDiffVSR:
        """Load a checkpoint: ``prepare(path_or_repo_id, **settings).load()`` (see ``prepare``)."""
        return cls.prepare(path_or_repo_id, **settings).load()

    @staticmethod
    def prepare(
        path_or_repo_id: str | os.PathLike = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        flow: str = AUTO_FLOW,
        flow_weights: str | os.PathLike | None = None,
        flow_scale: float = DEFAULT_FLOW_SCALE,
        num_steps: int = DEFAULT_STEPS,
        seed: int = DEFAULT_SEED,
        noise: str = DEFAULT_NOISE,
        color_fix: str = DEFAULT_COLOR_FIX,
        timestep_spacing: str | None = None,
        download: bool = True,
        compile: bool = DEFAULT_COMPILE,
    ) -> EngineSpec:
        """Check the settings, find the checkpoint and read its configs, without loading a network: what
        ``EngineSpec.load`` needs. The checkpoint is a local folder in the official layout, a hub id, or an
        embedded name ("nano", "tiny").

        ``device`` None: cuda:0 if CUDA is available, else the CPU; ``dtype`` None: bf16 on CUDA, fp32 on the CPU
        (``options.resolve_device`` and ``options.default_precision``).

        ``flow`` "auto" takes the backend the checkpoint was made for (raft_large for the official weights, dis
        for nano). ``flow_scale`` is the factor the LR pair is upscaled by before flow: 4 reproduces the official
        pipeline (flow at output resolution), 1 (default) runs flow on the LR frames at a small fraction of the cost.

        ``noise`` is each frame's initial noise: "fresh" per frame (official), "fixed" (frame 0's for the whole
        chain) or "warped" (the previous frame's carried along the flow; ``noise.warp_noise``).

        ``color_fix`` corrects each emitted frame's colours against its LR frame's bicubic upscale ("luma",
        "wavelet", "adain" or "none"; ``color_fix.py``); the stream's state is never corrected.

        ``compile`` True: the UNet and ControlNet are compiled with torch.compile for the first frame size
        (the first frames are slow while it compiles; output equal within float rounding).
        """
        settings = {"flow": flow, "flow_weights": flow_weights, "flow_scale": flow_scale, "steps": num_steps}
        settings |= {
            "seed": seed,
            "noise": noise,
            "color_fix": color_fix,
            "timestep_spacing": timestep_spacing,
        }
        settings |= {"compile": compile}
        check_options(settings)  # the rules the filter and the presets check: options.OPTIONS
        device = torch.device(device or resolve_device())
        dtype = resolve_dtype(dtype or default_precision(device.type))
        root = resolve_checkpoint(path_or_repo_id, download=download)
        scheduler = load_scheduler(root, timestep_spacing)
        flow, flow_weights = resolve_flow(root, flow, flow_weights)
        if flow_weights is not None and not os.path.isfile(flow_weights):
            raise ModelLoadError(f"flow_weights {os.fspath(flow_weights)!r} is not a file")
        return EngineSpec(
            root,
            device,
            dtype,
            scheduler,
            flow,
            flow_weights,
            flow_scale,
            num_steps,
            seed,
            noise,
            color_fix,
            compile,
        )

    def stream(self) -> Stream:
        """A new stream: frame 0 runs without temporal guidance."""
        return Stream(self)

    # The per-frame algorithm: docs/algorithm.md, "The per-frame step".

    @torch.inference_mode()
    def estimate_flow(self, lr: torch.Tensor, prev_lr: torch.Tensor) -> torch.Tensor:
        """Flow (1, 2, 4h, 4w) at output resolution from LR frame ``lr`` to ``prev_lr`` (both in [-1, 1])."""
        with self.components.lock, tf32(self.tf32), self._stage("flow"):
            return self.flow(lr, prev_lr)

    @torch.inference_mode()
    def upscale(
        self, lr: torch.Tensor, latents: torch.Tensor, previous: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """One frame: LR (1, 3, h, w) in [-1, 1] (sides multiples of 4) and, after frame 0, ``previous`` = (the
        previous raw HR output, this frame's ``estimate_flow`` to the previous LR frame) -> raw decoder output
        (1, 3, 4h, 4w), about [-1, 1], unclamped. The flow is the caller's: the warped noise needs it too."""
        with self.components.lock, tf32(self.tf32):
            guidance = self.warped_guidance(*previous) if previous is not None else None
            return self.generate(lr, latents, guidance)

    # The methods below follow the caller's autograd mode and take batches: the nano training runs them with
    # gradients on (training/), so what is trained is what the engine runs.

    def warped_guidance(self, prev_hr: torch.Tensor, flow: torch.Tensor) -> TemporalGuidance:
        """The guidance from the previous raw HR output and the flow current -> previous (HR pixels)."""
        with self._stage("guidance"):
            warped = warp(prev_hr.to(self.dtype), flow)
            c = self.components
            embedding = (
                embed_conditioning(c.controlnet, warped, self.strip_bytes)
                if self.reuse_conditioning
                else None
            )
            return TemporalGuidance(warped, c.vae.temporal_features(warped, self.strip_bytes), embedding)

    def generate(
        self, lr: torch.Tensor, latents: torch.Tensor, guidance: TemporalGuidance | None
    ) -> torch.Tensor:
        """Denoise ``latents`` given ``lr`` (and the guidance) and decode: the raw HR output."""
        with self._stage("denoise"):
            z = self.denoise(lr, latents, guidance)
        with self._stage("decode"):
            return self.decode(z, guidance)

    def denoise(
        self, lr: torch.Tensor, latents: torch.Tensor, guidance: TemporalGuidance | None
    ) -> torch.Tensor:
        """The DDIM rollout from ``latents``: the final latent."""
        c = self.components
        return ddim_rollout(
            self.unet,
            self.controlnet,
            self.scheduler,
            self.timesteps,
            lr.to(c.dtype),
            upload(latents, self.device).to(c.dtype),
            c.prompt_embeds.expand(lr.shape[0], -1, -1),
            self._embedding(guidance),
            before_step=self.before_step,
        )

    def _embedding(self, guidance: TemporalGuidance | None) -> Callable[[], torch.Tensor] | None:
        """What each denoising step gives the ControlNet: the frame's embedding, or (the baseline, without one)
        the warped estimate embedded again, whole."""
        if guidance is None:
            return None
        if guidance.embedding is not None:
            return lambda: guidance.embedding
        return lambda: self.components.controlnet.controlnet_cond_embedding(guidance.warped)

    def decode(self, z: torch.Tensor, guidance: TemporalGuidance | None) -> torch.Tensor:
        """Final latent (and the guidance's encoder features) -> raw HR output, about [-1, 1], unclamped."""
        vae = self.components.vae
        features = guidance.features if guidance is not None else None
        return vae.decode(z / vae.config.scaling_factor, features, self.strip_bytes)


@dataclass(frozen=True)
class EngineSpec:
    """A checked engine configuration (``StreamDiffVSR.prepare``): the checkpoint found and its configs read,
    no network loaded. ``load`` loads them (shared per checkpoint, device and dtype) and the flow backend."""

    root: Path
    device: torch.device
    dtype: torch.dtype
    scheduler: SchedulerMixin
    flow: str
    flow_weights: Path | None
    flow_scale: float
    num_steps: int
    seed: int
    noise: str
    color_fix: str
    compile: bool

    def load(self) -> StreamDiffVSR:
        components = load_components(self.root, self.device, self.dtype)
        backend = make_flow_backend(self.flow, self.flow_weights, self.device)
        return StreamDiffVSR(
            components,
            copy.deepcopy(self.scheduler),  # set_timesteps changes it: each engine has its own
            FlowEstimator(backend, self.flow_scale, SCALE),
            num_steps=self.num_steps,
            seed=self.seed,
            noise=self.noise,
            color_fix=self.color_fix,
            compile=self.compile,
        )
