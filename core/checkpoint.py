"""Finding and loading a Stream-DiffVSR checkpoint (diffusers folder layout), shared per process."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .autoencoder_temporal_tiny import TemporalAutoencoderTiny
from .errors import ModelLoadError
from .layout import PROMPT_EMBEDS_FILE, PROMPT_EMBEDS_KEY, cache_dir
from .options import PRECISIONS

DTYPES = dict(zip(PRECISIONS, (torch.float32, torch.float16, torch.bfloat16), strict=True))


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A precision name ("fp32", "fp16", "bf16") or a torch dtype -> the torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"unknown precision {dtype!r}; choose one of {', '.join(PRECISIONS)}")


def load_prompt_embeds(root: Path) -> torch.Tensor:
    """The empty-prompt embedding: from ``prompt_embeds.safetensors`` if shipped, else computed once and cached."""
    shipped = root / PROMPT_EMBEDS_FILE
    if shipped.is_file():
        return _read_prompt_embeds(shipped, "the checkpoint is damaged: download or copy it again")
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    cached = cache_dir() / "prompt_embeds" / f"{digest}.safetensors"
    if cached.is_file():
        return _read_prompt_embeds(cached, "delete it to have it computed again")
    embeds = encode_empty_prompt(root)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    save_file({PROMPT_EMBEDS_KEY: embeds.contiguous()}, tmp)
    os.replace(tmp, cached)
    return embeds


def _read_prompt_embeds(path: Path, fix: str) -> torch.Tensor:
    try:
        return load_file(path)[PROMPT_EMBEDS_KEY]
    except (OSError, KeyError, SafetensorError) as exc:
        raise ModelLoadError(f"cannot read the prompt embedding {path} ({exc}); {fix}") from None


def encode_empty_prompt(root: Path) -> torch.Tensor:
    """Run the checkpoint's CLIP text encoder once on "" (the text encoder is dropped right after)."""
    if not (root / "text_encoder").is_dir() or not (root / "tokenizer").is_dir():
        raise ModelLoadError(
            f"{root} has neither {PROMPT_EMBEDS_FILE} nor text_encoder/ + tokenizer/ to compute it from"
        )
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
    encoder = CLIPTextModel.from_pretrained(root / "text_encoder", torch_dtype=torch.float32).eval()
    length = min(tokenizer.model_max_length, encoder.config.max_position_embeddings)
    ids = tokenizer(
        "", padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.inference_mode():
        return encoder(ids)[0].float().clone()


@dataclass(frozen=True)
class Components:
    """The networks of one checkpoint on one device and dtype (shared by every engine that asks for them).

    ``lock`` serialises frames of different engines that share these networks (one device runs one at a time).
    ``root`` is the checkpoint folder, None for networks built in memory (the nano training).
    """

    root: Path | None
    unet: UNet2DConditionModel
    controlnet: ControlNetModel
    vae: TemporalAutoencoderTiny
    prompt_embeds: torch.Tensor
    device: torch.device
    dtype: torch.dtype
    lock: threading.Lock = field(default_factory=threading.Lock, init=False)


_components_cache: dict[tuple[str, str, torch.dtype], Components] = {}
_components_lock = threading.Lock()


def load_components(root: Path, device: torch.device, dtype: torch.dtype) -> Components:
    """Load (or reuse, if already loaded in this process) the networks of the checkpoint at ``root``."""
    key = (str(root.resolve()), str(device), dtype)
    with _components_lock:
        if key not in _components_cache:
            _components_cache[key] = _load_components(root, device, dtype)
        return _components_cache[key]


def _load_components(root: Path, device: torch.device, dtype: torch.dtype) -> Components:
    def load(cls, subfolder: str) -> torch.nn.Module:
        model = cls.from_pretrained(root, subfolder=subfolder, torch_dtype=dtype)
        # channels_last: oneDNN (CPU) and cuDNN (tensor cores) run these convolutions faster in NHWC.
        return model.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)

    try:
        unet = load(UNet2DConditionModel, "unet")
        controlnet = load(ControlNetModel, "controlnet")
        vae = load(TemporalAutoencoderTiny, "vae")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"could not load the checkpoint at {root}: {exc}") from exc
    prompt_embeds = load_prompt_embeds(root).to(device=device, dtype=dtype)
    select_attention(device, unet, controlnet)
    return Components(root, unet, controlnet, vae, prompt_embeds, device, dtype)


def select_attention(device: torch.device, *models: torch.nn.Module) -> None:
    """xformers attention on CUDA when it is installed and works with this torch, else torch's SDPA
    (``AttnProcessor2_0``), set explicitly: diffusers' ``set_default_attn_processor`` is the classic processor,
    which materialises the whole score matrix."""
    if device.type == "cuda":
        try:
            import xformers.ops  # noqa: F401

            for model in models:
                model.enable_xformers_memory_efficient_attention()
            return
        except Exception:  # absent, or built for another torch/CUDA: SDPA below
            pass
    for model in models:
        model.set_attn_processor(AttnProcessor2_0())


def load_scheduler(root: Path, timestep_spacing: str | None) -> DDIMScheduler:
    """The checkpoint's DDIM scheduler, optionally with another timestep spacing ("leading", "trailing", ...)."""
    try:
        scheduler = DDIMScheduler.from_pretrained(root, subfolder="scheduler")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load the scheduler config at {root / 'scheduler'}: {exc}") from exc
    if timestep_spacing is not None:
        scheduler = DDIMScheduler.from_config(scheduler.config, timestep_spacing=timestep_spacing)
    return scheduler
