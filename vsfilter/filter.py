"""``stream_diffvsr``: the public VapourSynth filter."""

from __future__ import annotations

import os
import warnings
import weakref

import torch
import vapoursynth as vs

from streamdiffvsr import StreamDiffVSR, StreamDiffVSRError
from streamdiffvsr.options import (
    AUTO_FLOW,
    DEFAULT_COLOR_FIX,
    DEFAULT_COMPILE,
    DEFAULT_FLOW_SCALE,
    DEFAULT_MAX_CHAIN,
    DEFAULT_MODEL,
    DEFAULT_NOISE,
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_SEED,
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_STEPS,
    RENAMED,
    SCALE,
    default_precision,
    engine_keywords,
)
from streamdiffvsr.threads import CpuThreads

from .chains import Chains
from .checks import NAME, check_clip, check_settings, error, resolve_device
from .server import FrameServer, output_cache_size

ANCHOR_PROP = "_StreamDiffVSRAnchor"


def stream_diffvsr(
    clip: vs.VideoNode,
    model: str | os.PathLike = DEFAULT_MODEL,
    device_index: int | None = None,
    steps: int = DEFAULT_STEPS,
    precision: str | None = None,
    flow: str = AUTO_FLOW,
    flow_scale: float = DEFAULT_FLOW_SCALE,
    flow_weights: str | os.PathLike | None = None,
    seed: int = DEFAULT_SEED,
    noise: str = DEFAULT_NOISE,
    color_fix: str = DEFAULT_COLOR_FIX,
    scene_detect: bool = True,
    scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
    max_chain: int = DEFAULT_MAX_CHAIN,
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
    timestep_spacing: str | None = None,
    checkpoint_interval: int | None = None,
    compile: bool = DEFAULT_COMPILE,
) -> vs.VideoNode:
    """Stream-DiffVSR 4x super-resolution of an RGBS/RGBH clip.

    Frame n is the model's sequential recurrence from its chain's anchor (the last scene cut at or before n, or
    frame 0), bit-identical whatever order frames are requested in. Output frames carry the source frame's
    props plus ``_StreamDiffVSRAnchor``.

    :param model: checkpoint folder, Hugging Face hub id, or an embedded name ("nano": trained on a CPU; "tiny": random).
    :param device_index: CUDA device; None picks cuda:0 if available, else the CPU.
    :param steps: DDIM steps per frame (the model was trained for 4).
    :param precision: "fp32", "fp16" or "bf16"; None is bf16 on CUDA, fp32 on the CPU.
    :param flow: optical flow backend: "auto" (the one the model was made for: raft_large for the official
        weights, dis for nano), "raft_large", "raft_small", "dis" (OpenCV, CPU) or "none".
    :param flow_scale: upscale of the LR pair before flow: 4 is the official setting, 1 is far cheaper.
    :param flow_weights: a RAFT state dict to use instead of torchvision's download.
    :param seed: seed of the initial noise (a function of seed and the frame's place in its chain).
    :param noise: each frame's initial noise: "fixed" (frame 0's draw for the whole chain: less flicker),
        "fresh" (a new draw per frame, the official pipeline) or "warped" (the previous frame's noise carried
        along the flow).
    :param color_fix: colour correction of each output frame against its source frame's bicubic upscale:
        "luma" (the upscale's colour with the output's luma detail), "wavelet" (the output's high frequencies over
        the upscale's low ones), "adain" (each channel's mean and spread made the upscale's) or "none". Output
        frames only: the chain's state stays the model's own.
    :param scene_detect: detect scene cuts when a frame has no ``_SceneChangePrev`` prop.
    :param scene_threshold: cut when the mean absolute gray difference from the previous frame exceeds this.
    :param max_chain: if > 0, also restart the chain every this many frames after a cut (bounds seek cost).
    :param snapshot_interval: frames between host-memory snapshots of a chain's stream state (a seek to a frame
        already passed costs at most this many steps near the newest frame, about a quarter of the distance
        further back; only the last few chains keep snapshots, so a linear encode runs in flat memory).
    :param timestep_spacing: override the scheduler's timestep spacing ("leading", "trailing", ...).
    :param checkpoint_interval: the former name of ``snapshot_interval`` (accepted with a FutureWarning until
        version 0.3).
    :param compile: compile the UNet and ControlNet for this clip's frame size with torch.compile (the first
        frames wait for the compiler; output equal within float rounding).
    """
    clip = check_clip(clip)
    if checkpoint_interval is not None:
        new, deprecation = RENAMED["checkpoint_interval"]
        warnings.warn(f"{NAME}: {deprecation.notice(new)}", FutureWarning, stacklevel=2)
        snapshot_interval = checkpoint_interval
    settings = check_settings(
        {
            "steps": steps,
            "precision": precision,
            "flow": flow,
            "flow_scale": flow_scale,
            "flow_weights": flow_weights,
            "seed": seed,
            "noise": noise,
            "color_fix": color_fix,
            "scene_detect": scene_detect,
            "scene_threshold": scene_threshold,
            "max_chain": max_chain,
            "snapshot_interval": snapshot_interval,
            "timestep_spacing": timestep_spacing,
            "compile": compile,
        }
    )
    device = resolve_device(device_index)
    precision = settings["precision"] = precision or default_precision(device)
    try:
        spec = StreamDiffVSR.prepare(model, device=device, **engine_keywords(settings))
    except StreamDiffVSRError as exc:
        raise error(str(exc)) from None

    core = vs.core
    width, height = clip.width * SCALE, clip.height * SCALE
    chains = Chains(clip, scene_detect=scene_detect, scene_threshold=scene_threshold, max_chain=max_chain)
    server = FrameServer(
        spec,
        clip,
        chains,
        snapshot_interval=snapshot_interval,
        output_frames=output_cache_size(width * height * 3 * 4),
        threads=CpuThreads.current(),
    )

    def output_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        blank, source, cut = f
        out = blank.copy()
        try:
            anchor = server.serve(n, source, cut, out)
        except StreamDiffVSRError as exc:
            raise error(f"frame {n}: {exc}") from None
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()  # the failed frame's blocks, so the next request starts clean
            raise error(
                f"frame {n}: {out_of_memory_message(width, height, precision, flow, flow_scale)}"
            ) from None
        out.props.clear()
        out.props.update(source.props)
        out.props[ANCHOR_PROP] = anchor
        return out

    blank = core.std.BlankClip(clip, width=width, height=height, keep=True)
    output = core.std.ModifyFrame(blank, [blank, clip, chains.cuts], output_frame)
    _servers[output] = server
    _live_servers.add(server)
    return output


def out_of_memory_message(width: int, height: int, precision: str, flow: str, flow_scale: float) -> str:
    """What ran out of GPU memory, and only the fixes that differ from the settings already in use."""
    fixes = []
    if precision == "fp32":
        fixes.append("precision='bf16'")
    if flow_scale > DEFAULT_FLOW_SCALE:
        fixes.append(f"flow_scale={DEFAULT_FLOW_SCALE:g}")
    fixes.append("a smaller clip (crop or downscale the source), or free the GPU memory other programs hold")
    return (
        f"out of GPU memory at {width}x{height} output with precision={precision!r}, flow={flow!r}, "
        f"flow_scale={flow_scale:g}; try {' or '.join(fixes)}"
    )


_servers: weakref.WeakKeyDictionary[vs.VideoNode, FrameServer] = weakref.WeakKeyDictionary()
_live_servers: weakref.WeakSet[FrameServer] = (
    weakref.WeakSet()
)  # kept alive by their clips' output_frame callbacks


def live_frame_servers() -> list[FrameServer]:
    """The frame servers of every ``stream_diffvsr`` clip still alive in this process, even when the script kept
    only a clip derived from it (a segmented encode plans its boundaries from them)."""
    return list(_live_servers)


def frame_server(node: vs.VideoNode) -> FrameServer:
    """The frame server behind a clip returned by ``stream_diffvsr`` (diagnostics: cache and step counts)."""
    return _servers[node]
