"""Finding a checkpoint, its flow backend and RAFT's weights on disk, without torch (the command line asks this
module before anything loads; ``checkpoint`` loads what it finds)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from .errors import ModelLoadError, NotDownloadable
from .layout import CHECKPOINT_PATTERNS, DEFAULT_FLOW_KEY, TRAINED_STEPS_KEY
from .options import AUTO_FLOW, DEFAULT_STEPS, FLOW_BACKENDS

# torchvision's pretrained RAFT files (the DEFAULT weights' file names; tests/test_engine.py checks them against
# torchvision's own): found in torch's hub cache without importing torch.
RAFT_FILES = {
    "raft_large": "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
    "raft_small": "raft_small_C_T_V2-01064c6d.pth",
}


def torch_hub_dir() -> Path:
    """torch's hub folder as ``torch.hub.get_dir()`` finds it ($TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub,
    else ~/.cache/torch/hub)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(os.path.expanduser(os.environ.get("TORCH_HOME") or os.path.join(cache, "torch")), "hub")


def needs_pretrained_weights(flow: str, weights: str | os.PathLike | None) -> bool:
    """Whether the flow backend ``flow``, given ``weights`` (None: no file of its own), loads torchvision's
    pretrained weights: the one rule ``download``, the preflight and the engine follow."""
    return flow in RAFT_FILES and weights is None


def raft_file(variant: str) -> Path:
    """Where torchvision's pretrained weights of a RAFT ``variant`` are (or go) in torch's hub cache."""
    return torch_hub_dir() / "checkpoints" / RAFT_FILES[variant]


def _model_index(root: Path) -> dict:
    try:
        index = json.loads((root / "model_index.json").read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def default_flow(root: Path) -> str:
    """The flow backend a checkpoint was made for: model_index.json's "_default_flow", else raft_large."""
    flow = _model_index(root).get(DEFAULT_FLOW_KEY, "raft_large")
    return flow if flow in FLOW_BACKENDS else "raft_large"


def trained_steps(root: Path) -> int | None:
    """The DDIM steps per frame a checkpoint was trained for: model_index.json's "_trained_steps" (null: none,
    as for random weights), else the official model's DEFAULT_STEPS (the paper's four-step model)."""
    steps = _model_index(root).get(TRAINED_STEPS_KEY, DEFAULT_STEPS)
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None


def resolve_flow(
    root: Path, flow: str, flow_weights: str | os.PathLike | None = None
) -> tuple[str, Path | None]:
    """The flow backend for the checkpoint at ``root`` ("auto": its own) and its weights file: ``flow_weights``
    if given, else the checkpoint's ``flow/<backend>.safetensors`` if it ships one, else None (for RAFT:
    torchvision's pretrained weights)."""
    if flow == AUTO_FLOW:
        flow = default_flow(root)
    if flow_weights is not None:
        return flow, Path(flow_weights)
    shipped = root / "flow" / f"{flow}.safetensors"
    return flow, shipped if shipped.is_file() else None


def _tiny() -> Path:
    from .tiny_checkpoint import ensure_tiny_checkpoint  # builds it with torch the first time

    return ensure_tiny_checkpoint()


# Checkpoints that ship with the package: "nano" (trained on a CPU, see training/) and "tiny" (random weights,
# built on first use: a pipeline check that loads through exactly the loader a real checkpoint goes through).
EMBEDDED_MODELS: dict[str, Callable[[], Path]] = {
    "nano": lambda: Path(__file__).parent / "models" / "nano",
    "tiny": _tiny,
}


def resolve_checkpoint(model: str | os.PathLike, *, download: bool = True) -> Path:
    """A local checkpoint folder for ``model``: an embedded name, a folder, or a hub id (cached download)."""
    name = os.fspath(model)
    embedded = EMBEDDED_MODELS
    if name in embedded:
        return embedded[name]()
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "unet").is_dir() or not (path / "vae").is_dir():
            raise ModelLoadError(
                f"{path} is not a Stream-DiffVSR checkpoint folder (it needs unet/, controlnet/, vae/, scheduler/)"
            )
        return path
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
        raise ModelLoadError(
            f"model {name!r}: no such checkpoint folder, and not a hub id (owner/name) or one of {sorted(embedded)}"
        )
    return _hub_snapshot(name, download)


def _hub_snapshot(repo_id: str, download: bool) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=CHECKPOINT_PATTERNS, local_files_only=True))
    except Exception:
        if not download:
            raise ModelLoadError(
                f"model {repo_id!r} is not in the Hugging Face cache; run `streamdiffvsr download {repo_id}` "
                'on a machine with network access, or use the embedded preview model "nano"'
            ) from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=CHECKPOINT_PATTERNS))
    except Exception as exc:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise NotDownloadable(
            f"model {repo_id!r} is not in the Hugging Face cache and could not be downloaded ({type(exc).__name__}); "
            f"run `streamdiffvsr download {repo_id}` with network access, or pass a local checkpoint folder, "
            'or use the embedded preview model "nano"',
            os.path.join(HF_HUB_CACHE, f"models--{repo_id.replace('/', '--')}"),
        ) from None
