"""The one home of every engine and filter option's allowed values, ranges and defaults, and of the rules behind
the automatic choices (device, precision, YUV matrix).

The filter checks against these, the command line's preset schema is derived from them, and the engine applies
them. No torch at import time (the command line imports this module to validate presets); the device rule imports
torch when it is called.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DeviceError

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

DEFAULT_MODEL = "Jamichsu/Stream-DiffVSR"
DEFAULT_STEPS = 4
DEFAULT_FLOW_SCALE = 1.0
DEFAULT_SEED = 0
DEFAULT_NOISE = "fresh"
DEFAULT_SCENE_THRESHOLD = 0.1
DEFAULT_MAX_CHAIN = 0
DEFAULT_SNAPSHOT_INTERVAL = 16
# torch.compile of the UNet and ControlNet for the clip's frame size: off until measured on a GPU (BENCHMARKS.md).
DEFAULT_COMPILE = False
# inductor without CUDA graphs: the ControlNet's reused conditioning embedding runs eagerly between the compiled
# graphs, and the outputs of one CUDA-graph generation feed the next ("reduce-overhead" is the experiment).
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
        low = f"({self.low:g}" if self.low_open else f"[{self.low:g}"
        return f"{low}, {self.high:g}]" if self.high is not None else f"{low}, inf)"


STEPS_BOUNDS = Bounds(1, 50)
FLOW_SCALE_BOUNDS = Bounds(0, SCALE, low_open=True)
SEED_BOUNDS = Bounds(0, 2**63 - 1)
SCENE_THRESHOLD_BOUNDS = Bounds(0, 1, low_open=True)
MAX_CHAIN_BOUNDS = Bounds(0)  # 0 = never restart
SNAPSHOT_INTERVAL_BOUNDS = Bounds(1)


def resolve_device(device_index: int | None = None) -> str:
    """The device frames run on. None: cuda:0 if CUDA is available, else the CPU; an index: that CUDA device,
    which must exist (a DeviceError that says what there is otherwise)."""
    import torch

    if device_index is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
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
    return f"cuda:{device_index}"


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
