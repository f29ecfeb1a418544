"""The official checkpoint folder layout (the files a Stream-DiffVSR checkpoint has) and where this package keeps
what it builds. Shared by the loader and by the builders of the embedded models."""

from __future__ import annotations

import os
from pathlib import Path

PROMPT_EMBEDS_FILE = "prompt_embeds.safetensors"
PROMPT_EMBEDS_KEY = "prompt_embeds"
CHECKPOINT_PATTERNS = [
    "model_index.json",
    PROMPT_EMBEDS_FILE,
    "unet/*",
    "controlnet/*",
    "vae/*",
    "scheduler/*",
    "text_encoder/*",
    "tokenizer/*",
    "flow/*",
]
# model_index.json of a checkpoint in the official layout (the text encoder is replaced by PROMPT_EMBEDS_FILE).
MODEL_INDEX = {
    "_class_name": "StreamDiffVSRPipeline",
    "controlnet": ["diffusers", "ControlNetModel"],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": [None, "TemporalAutoencoderTiny"],
    "text_encoder": [None, None],
    "tokenizer": [None, None],
    "safety_checker": [None, None],
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
}

# model_index.json keys of this package: the flow backend a checkpoint was made for, and the DDIM step count it was
# trained for (absent: the official model's DEFAULT_STEPS; null: trained for none, as the random tiny).
DEFAULT_FLOW_KEY = "_default_flow"
TRAINED_STEPS_KEY = "_trained_steps"

# The SD x4-upscaler DDIM schedule, with the spacing training used.
SD_X4_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "trailing",
}


def cache_dir() -> Path:
    """Where this package keeps what it builds (embedded models, prompt embeddings)."""
    base = os.environ.get("STREAMDIFFVSR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "streamdiffvsr"
    )
    return Path(base)
