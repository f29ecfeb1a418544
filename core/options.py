"""The one home of every engine and filter option's allowed values, ranges and defaults, and of the rules behind
the automatic choices (device, precision, YUV matrix).

The filter checks against these, the command line's preset schema is derived from them, and the engine applies
them. No torch at import time (the command line imports this module to validate presets); the device rule imports
torch when it is called.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from .deprecation import Deprecation, deprecate
from .errors import DeviceError, StreamDiffVSRError

SCALE = 4  # the model's upscale factor
MIN_SIDE = 16  # smallest LR side: the tiny UNet's bottom level needs it

PRECISIONS = ("fp32", "fp16", "bf16")
FLOW_BACKENDS = ("raft_large", "raft_small", "dis", "none")
# "auto": the backend the checkpoint names as its default (model_index.json "_default_flow"), else raft_large.
AUTO_FLOW = "auto"
FLOW_CHOICES = (AUTO_FLOW, *FLOW_BACKENDS)
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
# Initial noise of each frame: "fresh" per frame (the official pipeline), "fixed" (frame 0's draw for the whole
# chain), "warped" (the previous frame's noise carried along the flow, still white Gaussian; core/noise.py).
NOISE_MODES = ("fresh", "fixed", "warped")
# Colour correction of each emitted frame against its LR frame's bicubic upscale (core/color_fix.py).
COLOR_FIXES = ("none", "wavelet", "adain", "luma")

DEFAULT_MODEL = "Jamichsu/Stream-DiffVSR"
DEFAULT_STEPS = 4
DEFAULT_FLOW_SCALE = 1.0
DEFAULT_SEED = 0
# "fixed": less temporal flicker than bicubic on every clip measured, "fresh" more, at the same PSNR (BENCHMARKS.md).
DEFAULT_NOISE = "fixed"
# "luma": the chroma error of bicubic (nano's own is 1.35x to 3.3x it on real footage) and the PSNR-Y of the wavelet
# fix, the best of the fixes, on every clip measured (BENCHMARKS.md, "Colour correction").
DEFAULT_COLOR_FIX = "luma"
DEFAULT_SCENE_THRESHOLD = 0.1
DEFAULT_MAX_CHAIN = 0
DEFAULT_SNAPSHOT_INTERVAL = 16
# torch.compile of the UNet and ControlNet for the clip's frame size: off until measured on a GPU (BENCHMARKS.md).
DEFAULT_COMPILE = False
# inductor without CUDA graphs: the ControlNet's conditioning embedding runs eagerly once per frame, before the
# compiled graphs, and the outputs of one CUDA-graph generation feed the next ("reduce-overhead" is the experiment).
DEFAULT_COMPILE_MODE = "default"


@dataclass(frozen=True)
class Bounds:
    """An allowed numeric range; ``low_open`` excludes ``low`` itself. ``high`` None: no upper bound."""

    low: float
    high: float | None = None
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)

    def describe(self) -> str:
        low = f"({number(self.low)}" if self.low_open else f"[{number(self.low)}"
        return f"{low}, {number(self.high)}]" if self.high is not None else f"{low}, inf)"


def number(x: float) -> str:
    """A bound as written: whole numbers in full (a seed's 9223372036854775807, not 9.22337e+18)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


STEPS_BOUNDS = Bounds(1, 50)
FLOW_SCALE_BOUNDS = Bounds(0, SCALE, low_open=True)
SEED_BOUNDS = Bounds(0, 2**63 - 1)
SCENE_THRESHOLD_BOUNDS = Bounds(0, 1, low_open=True)
MAX_CHAIN_BOUNDS = Bounds(0)  # 0 = never restart
SNAPSHOT_INTERVAL_BOUNDS = Bounds(1)
DEVICE_INDEX_BOUNDS = Bounds(0)


class OptionError(StreamDiffVSRError, ValueError):
    """A setting's value is not allowed; the message says what is."""


@dataclass(frozen=True)
class Option:
    """One setting of the engine or the filter. ``kind``: int, float, bool, choice or path. ``auto``: None is
    allowed and means the automatic choice. ``engine``: the keyword of ``StreamDiffVSR.prepare`` it is passed
    as (None: the filter's own setting)."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    bounds: Bounds | None = None
    auto: bool = False
    engine: str | None = None

    def allowed(self) -> str:
        """The allowed values, in words (for error messages and ``presets --keys``)."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "path":
            text = "a file path"
        else:
            noun = "an integer" if self.kind == "int" else "a number"
            b = self.bounds
            if b is None:
                text = noun
            elif b.high is None:
                text = f"{noun} {'>' if b.low_open else '>='} {number(b.low)}"
            elif b.low_open:
                text = f"{noun} above {number(b.low)}, up to {number(b.high)}"
            else:
                text = f"{noun} from {number(b.low)} to {number(b.high)}"
        return f"{text}, or auto" if self.auto else text

    def check(self, value: Any, name: str | None = None) -> Any:
        """``value`` if allowed (a float option's int as float), else an OptionError naming ``name`` (default:
        the option's own name)."""
        if value is None and (self.auto or self.kind == "path"):
            return None
        if self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind in ("int", "float"):
            types = (int,) if self.kind == "int" else (int, float)
            ok = isinstance(value, types) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (self.bounds is None or value in self.bounds)
            value = float(value) if ok and self.kind == "float" else value
        elif self.kind == "choice":
            ok = isinstance(value, str) and value in self.choices
        else:
            ok = isinstance(value, str | PathLike)
        if not ok:
            raise OptionError(f"{name or self.name} must be {self.allowed()}, got {value!r}")
        return value


OPTIONS: tuple[Option, ...] = (
    Option("steps", "int", DEFAULT_STEPS, "diffusion steps per frame", bounds=STEPS_BOUNDS, engine="num_steps"),
    Option("precision", "choice", None, "network precision (auto: bf16 on CUDA, fp32 on CPU)",
           choices=PRECISIONS, auto=True, engine="dtype"),
    Option("flow", "choice", AUTO_FLOW, "optical flow backend (auto: the model's own, raft_large for the official)",
           choices=FLOW_CHOICES, engine="flow"),
    Option("flow_scale", "float", DEFAULT_FLOW_SCALE, "LR upscale factor before flow (4 = official, 1 = cheap)",
           bounds=FLOW_SCALE_BOUNDS, engine="flow_scale"),
    Option("flow_weights", "path", None, "RAFT state dict file (default: torchvision's weights)",
           engine="flow_weights"),
    Option("seed", "int", DEFAULT_SEED, "seed of the per-frame initial noise", bounds=SEED_BOUNDS, engine="seed"),
    Option("noise", "choice", DEFAULT_NOISE,
           "initial noise: fixed per chain, fresh per frame (the official pipeline), or warped along the flow",
           choices=NOISE_MODES, engine="noise"),
    Option("color_fix", "choice", DEFAULT_COLOR_FIX, "colour correction of each output frame against its source "
           "frame's bicubic upscale: luma (its colour, the model's luma detail), wavelet (its low frequencies), "
           "adain (its mean and spread per channel) or none; never applied to the chain's state",
           choices=COLOR_FIXES, engine="color_fix"),
    Option("scene_detect", "bool", True, "restart the temporal chain at scene changes"),
    Option("scene_threshold", "float", DEFAULT_SCENE_THRESHOLD, "scene cut threshold (mean abs gray difference)",
           bounds=SCENE_THRESHOLD_BOUNDS),
    Option("max_chain", "int", DEFAULT_MAX_CHAIN, "restart the temporal chain every N frames (0 = never)",
           bounds=MAX_CHAIN_BOUNDS),
    Option("snapshot_interval", "int", DEFAULT_SNAPSHOT_INTERVAL,
           "frames between snapshots of the stream state (seeking)", bounds=SNAPSHOT_INTERVAL_BOUNDS),
    Option("timestep_spacing", "choice", None, "DDIM timestep spacing (auto: the checkpoint's)",
           choices=TIMESTEP_SPACINGS, auto=True, engine="timestep_spacing"),
    Option("compile", "bool", DEFAULT_COMPILE, "torch.compile the denoising networks (slow first frames)",
           engine="compile"),
    Option("device_index", "int", None, "CUDA device index (auto: the first)", bounds=DEVICE_INDEX_BOUNDS,
           auto=True),
)  # fmt: skip
OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
# Former option names: what each is now, and its deprecation (the notice, the version it goes away in).
RENAMED: dict[str, tuple[str, Deprecation]] = {
    "checkpoint_interval": ("snapshot_interval", deprecate("checkpoint_interval", "0.3")),
}


def check_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (by option name) checked, normalised; an OptionError names the first one not allowed."""
    return {name: OPTIONS_BY_NAME[name].check(value) for name, value in values.items()}


def engine_keywords(values: Mapping[str, Any]) -> dict[str, Any]:
    """``StreamDiffVSR.prepare`` keywords from setting values by option name (the filter's own are left out)."""
    return {o.engine: values[o.name] for o in OPTIONS if o.engine is not None and o.name in values}


def resolve_device(device_index: int | None = None) -> str:
    """The device frames run on. None: cuda:0 if CUDA is available, else the CPU; an index: that CUDA device,
    which must exist (a DeviceError that says what there is otherwise)."""
    import torch

    if device_index is None:
        return device_name(None, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if not isinstance(device_index, int) or isinstance(device_index, bool):
        raise DeviceError(f"device_index must be an integer or None, got {device_index!r}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceError(
            f"device_index={device_index} asks for a CUDA device, but CUDA is not available "
            f"(torch {torch.__version__}, {build}); leave device_index unset to run on the CPU"
        )
    count = torch.cuda.device_count()
    if not 0 <= device_index < count:
        raise DeviceError(
            f"device_index={device_index} is out of range: there are {count} CUDA device(s) (0..{count - 1})"
        )
    return device_name(device_index, count)


def device_name(device_index: int | None, cuda_devices: int) -> str:
    """The device ``resolve_device`` picks, given how many CUDA devices there are (no torch here): the one asked
    for, else cuda:0, else the CPU."""
    if cuda_devices == 0:
        return "cpu"
    return f"cuda:{device_index or 0}"


def nvidia_gpu_present() -> bool:
    """Whether the networks will run on an NVIDIA GPU here, told without torch (the command's own process
    never imports it): the driver lists a GPU and CUDA_VISIBLE_DEVICES does not hide them all."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def default_precision(device: str) -> str:
    """bf16 on CUDA (tensor cores, fp32's range), fp32 on the CPU (CPU bf16 was no faster for these networks)."""
    return "bf16" if str(device).startswith("cuda") else "fp32"


def use_tf32(device: str) -> bool:
    """TF32 tensor cores for float32 matrix products and convolutions: on for CUDA (the paper's fp32 numbers are
    fp32 + TF32; its 10-bit mantissa is still finer than bf16's 7), meaningless on the CPU. The engine sets it
    for the duration of each frame only, so other torch code in the process keeps its own setting."""
    return str(device).startswith("cuda")


# Values of the _Matrix frame prop (ITU-T H.273) and their names for resize's matrix_in_s.
MATRIX_NAMES = {
    0: "rgb",
    1: "709",
    4: "fcc",
    5: "470bg",
    6: "170m",
    7: "240m",
    8: "ycgco",
    9: "2020ncl",
    10: "2020cl",
    12: "chromancl",
    13: "chromacl",
    14: "ictcp",
}
MATRIX_BT709, MATRIX_BT470BG, MATRIX_ST170M = 1, 5, 6


def guess_matrix(width: int, height: int) -> int:
    """The YUV matrix (H.273 code) of a source that does not say: BT.709 for HD (width >= 1280 or height > 576),
    BT.470BG for 576-line PAL, else SMPTE 170M (NTSC-era SD)."""
    if width >= 1280 or height > 576:
        return MATRIX_BT709
    return MATRIX_BT470BG if height == 576 else MATRIX_ST170M
