"""Benchmark: the official algorithm (baseline) against our default configuration, in one process.

Baseline = the official pipeline's way (docs/algorithm.md, "Where we deliberately differ from the official
pipeline"): fp32, NCHW, RAFT-large at output resolution (flow_scale=4), ControlNet conditioning embedded at every
step. Ours = flow on the LR frames (flow_scale=1), bf16 on CUDA (fp32 on CPU), networks channels_last,
conditioning embedding reused across the steps, full-resolution convolutions in strips on the CPU. Both run the
full-size architecture (official configs in bench/configs, random weights: speed does not depend on them) on the
same synthetic clip, frame by frame through ``Stream``.

    python bench/benchmark.py --size 64x64 --frames 4          # CPU: full size, a few frames
    python bench/benchmark.py --size 320x180 --frames 12       # GPU: 720p output
    python bench/benchmark.py --tiny --memory-frames 10,100,500  # quick smoke + long memory run
    python bench/benchmark.py --size 320x180 --compile default,reduce-overhead --json out.json  # + compiled

``--compile MODES`` adds one configuration per torch.compile mode: ours with the UNet and ControlNet compiled
(its first frame includes the compile time), reported with its largest output difference from ours.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, DDIMScheduler, UNet2DConditionModel

from streamdiffvsr import StreamDiffVSR, TemporalAutoencoderTiny
from streamdiffvsr.checkpoint import Components, load_components, load_scheduler, select_attention
from streamdiffvsr.flow import DisFlow, FlowEstimator, RaftFlow
from streamdiffvsr.layout import cache_dir
from streamdiffvsr.profiling import StageTimer
from streamdiffvsr.tiny_checkpoint import build_tiny_checkpoint
from streamdiffvsr.warp import warp

CONFIGS = Path(__file__).resolve().parent / "configs"


@dataclass
class Config:
    name: str
    dtype: torch.dtype
    flow_scale: float
    reuse_conditioning: bool
    channels_last: bool
    strips: bool
    compile_mode: str | None = None


@dataclass
class Result:
    config: Config
    frame_seconds: list[float]
    stages: dict[str, float]
    peak_mib: float
    memory_after: dict[int, float] = field(default_factory=dict)
    outputs: list[torch.Tensor] = field(default_factory=list, repr=False)
    max_diff_vs_ours: float | None = None
    error: str | None = None

    @property
    def steady(self) -> float:
        return statistics.median(self.frame_seconds[2:] or self.frame_seconds)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def memory_mib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mib()


def texture(h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    """A smooth random texture sampled at (x + dx, y + dy) (the same texture for every call)."""
    rng = np.random.default_rng(0)
    ys, xs = np.meshgrid(np.arange(h) + dy, np.arange(w) + dx, indexing="ij")
    img = np.zeros((3, h, w))
    for c in range(3):
        for _ in range(6):
            fx, fy, phase = rng.uniform(0.01, 0.12, 2).tolist() + [rng.uniform(0, 6.3)]
            img[c] += np.sin(fx * xs + fy * ys + phase)
    return torch.from_numpy((img - img.min()) / (img.max() - img.min())).float()[None]


def synthetic_clip(n: int, h: int, w: int) -> list[torch.Tensor]:
    return [texture(h, w, 0.75 * i, 0.25 * i) for i in range(n)]


def random_raft(device: torch.device) -> RaftFlow:
    from safetensors.torch import save_file
    from torchvision.models.optical_flow import raft_large

    # the package's cache, never torch's in HOME
    path = cache_dir() / "bench" / "random-raft-large.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(raft_large(weights=None).state_dict(), path)
    return RaftFlow("raft_large", path, device)


_built: dict[torch.dtype, Components] = {}


def full_size_components(device: torch.device, dtype: torch.dtype) -> Components:
    """The full-size networks with random weights, built on ``device`` (fast there); the last built is reused by
    the next configuration of the same dtype, and dropped before one of another dtype is built (so a peak
    memory figure holds one set of weights only)."""
    if dtype in _built:
        return _built[dtype]
    _built.clear()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch.manual_seed(0)

    def build(cls, sub: str) -> torch.nn.Module:
        with torch.device(device):
            model = cls.from_config(cls.load_config(CONFIGS / sub))
        return model.eval().requires_grad_(False).to(device=device, dtype=dtype)

    unet = build(UNet2DConditionModel, "unet")
    controlnet = build(ControlNetModel, "controlnet")
    vae = build(TemporalAutoencoderTiny, "vae")
    select_attention(device, unet, controlnet)
    embeds = torch.randn(1, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    _built[dtype] = Components(CONFIGS, unet, controlnet, vae, embeds, device, dtype)
    return _built[dtype]


def make_engine(args, config: Config, device: torch.device) -> StreamDiffVSR:
    if args.tiny:
        root = build_tiny_checkpoint(Path(args.workdir) / "tiny")
        components = load_components(root, device, config.dtype)
        scheduler = load_scheduler(root, None)
    else:
        components = full_size_components(device, config.dtype)
        scheduler = DDIMScheduler.from_pretrained(CONFIGS, subfolder="scheduler")
    # The engine loads networks channels_last; the baseline (the official pipeline) runs them NCHW. Set on
    # every run: the tiny checkpoint's networks are shared by both configurations.
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    for model in (components.unet, components.controlnet, components.vae):
        model.to(memory_format=memory_format)
    flow = FlowEstimator(random_raft(device), config.flow_scale, 4)
    engine = StreamDiffVSR(
        components, scheduler, flow, reuse_conditioning=config.reuse_conditioning, strips=config.strips
    )
    if config.compile_mode is not None:
        engine.compile_networks(config.compile_mode)
    return engine


def run_config(
    args, config: Config, device: torch.device, frames: list[torch.Tensor], memory_marks: set[int]
) -> Result:
    """Time ``frames`` through one stream, then keep streaming (unprofiled) to record memory at ``memory_marks``."""
    engine = make_engine(args, config, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stream = engine.stream()
    times, stages, outputs = [], {}, []
    memory_after: dict[int, float] = {}
    for i in range(max([len(frames), *memory_marks])):
        timed = i < len(frames)
        timer = engine.profile() if timed else None
        engine.timer = timer
        start = time.perf_counter()
        output = stream.step(frames[i % len(frames)].to(device)).cpu()
        if timed:
            times.append(time.perf_counter() - start)
            outputs.append(output)
            if i >= 2:
                stages["copies"] = stages.get("copies", 0.0) + times[-1] - sum(timer.seconds.values())
                for name, seconds in timer.seconds.items():
                    stages[name] = stages.get(name, 0.0) + seconds
        if i + 1 in memory_marks:
            gc.collect()
            memory_after[i + 1] = memory_mib(device)
    steady_frames = max(len(frames) - 2, 1)
    result = Result(
        config,
        times,
        {k: v / steady_frames for k, v in stages.items()},
        memory_mib(device),
        memory_after,
        outputs,
    )
    del engine, stream
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def flow_stage_seconds(device: torch.device, h: int, w: int, scale: float, repeats: int) -> float:
    estimator = FlowEstimator(random_raft(device), scale, 4)
    a, b = (f.to(device) * 2 - 1 for f in synthetic_clip(2, h, w))
    estimator(a, b)  # warm-up
    timer = StageTimer(device)
    for _ in range(repeats):
        with timer("flow"):
            estimator(a, b)
    return timer.seconds["flow"] / repeats


def warp_error_table(h: int, w: int) -> list[tuple[float, float]]:
    """Mean |warp(prev HR, flow) - current HR| over the interior, flow from DIS at each flow_scale (known motion)."""
    hr_prev, hr_cur = texture(4 * h, 4 * w, 0, 0) * 2 - 1, texture(4 * h, 4 * w, 5.0, -3.0) * 2 - 1
    lr_prev, lr_cur = (
        F.interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True) for x in (hr_prev, hr_cur)
    )
    inner = (..., slice(32, -32), slice(32, -32))
    rows = [(0.0, (hr_prev - hr_cur)[inner].abs().mean().item())]
    for scale in (1, 2, 4):
        flow = FlowEstimator(DisFlow(), scale, 4)(lr_cur, lr_prev)
        rows.append((scale, (warp(hr_prev, flow) - hr_cur)[inner].abs().mean().item()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="tiny random architecture (smoke test, memory runs)"
    )
    parser.add_argument("--size", default="64x64", help="LR input WxH (output is 4x)")
    parser.add_argument("--frames", type=int, default=4, help="frames timed per configuration")
    parser.add_argument(
        "--memory-frames",
        default="",
        help="e.g. 10,100,500: memory of our configuration after these many frames",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--flow-size", default="320x180", help="LR WxH for the flow-stage comparison (720p out)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat in ABBA order; ratio of per-config medians"
    )
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--compile",
        default="",
        help="torch.compile modes to add as configurations, e.g. default,reduce-overhead",
    )
    parser.add_argument("--json", help="also write the results (no outputs) to this file")
    parser.add_argument("--workdir", default="/tmp/streamdiffvsr-bench")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    frames = synthetic_clip(args.frames, h, w)
    ours_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    configs = [Config("ours", ours_dtype, 1.0, True, True, True)]
    for mode in filter(None, args.compile.split(",")):
        configs.append(Config(f"ours+compile:{mode}", ours_dtype, 1.0, True, True, True, mode))
    if not args.skip_baseline:
        configs.insert(0, Config("baseline", torch.float32, 4.0, False, False, False))

    print(
        f"# {'tiny' if args.tiny else 'full-size'} architecture, {w}x{h} -> {4 * w}x{4 * h}, {args.frames} frames"
    )
    print(
        f"# {platform.node()} | {device_name(device)} | torch {torch.__version__} | threads {torch.get_num_threads()}"
    )
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC | {' '.join(sys.argv)}")
    marks = {int(n) for n in args.memory_frames.split(",")} if args.memory_frames else set()
    results = []
    for r in range(args.rounds):  # ABBA order cancels a slow drift of the machine's speed
        for c in configs if r % 2 == 0 else configs[::-1]:
            results.append(
                run_guarded(args, c, device, frames, marks if c.name == "ours" and r == 0 else set())
            )
            compare_to_ours(results)
            if args.json:  # after each configuration: a run stopped by a time limit keeps what it measured
                write_json(args, results, device, {})
    print_results(results, device)
    _built.clear()

    repeats = 2 if device.type == "cpu" else 10
    fw, fh = (int(v) for v in args.flow_size.lower().split("x"))
    s4, s1 = (flow_stage_seconds(device, fh, fw, s, repeats) for s in (4, 1))
    print(f"\nflow stage (RAFT-large, {fw}x{fh} -> {4 * fw}x{4 * fh}):", end=" ")
    print(f"flow_scale=4 {s4 * 1000:.1f} ms, flow_scale=1 {s1 * 1000:.1f} ms: {s4 / s1:.1f}x cheaper")
    print("\nwarp error vs known motion (DIS flow, mean abs on [-1,1], interior):")
    for scale, err in warp_error_table(h, w):
        print(f"  {'no warp' if scale == 0 else f'flow_scale={scale:g}':>14}: {err:.4f}")
    if args.json:
        write_json(args, results, device, {"flow_scale_4_ms": s4 * 1000, "flow_scale_1_ms": s1 * 1000})


def run_guarded(args, config: Config, device, frames, marks) -> Result:
    """``run_config``; a compiled configuration that fails is reported as failed (the others still run)."""
    if config.compile_mode is None:
        return run_config(args, config, device, frames, marks)
    try:
        return run_config(args, config, device, frames, marks)
    except Exception as exc:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        print(f"# {config.name} failed: {message}", flush=True)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return Result(config, [float("nan")], {}, float("nan"), error=message)


def compare_to_ours(results: list[Result]) -> None:
    """Largest |output - ours| over the timed frames, for the compiled configurations (same weights, frames)."""
    ours = next((r for r in results if r.config.name == "ours"), None)
    for r in results:
        if ours is not None and r.config.compile_mode is not None and r.outputs:
            r.max_diff_vs_ours = max(
                (a - b).abs().max().item() for a, b in zip(r.outputs, ours.outputs, strict=True)
            )


def write_json(args, results: list[Result], device: torch.device, flow: dict[str, float]) -> None:
    rows = [
        {
            "config": r.config.name,
            "dtype": str(r.config.dtype).removeprefix("torch."),
            "flow_scale": r.config.flow_scale,
            "steady_s": r.steady,
            "first_frame_s": r.frame_seconds[0],
            "stages_s": r.stages,
            "peak_mib": r.peak_mib,
            "memory_after_mib": r.memory_after,
            "max_diff_vs_ours": r.max_diff_vs_ours,
            "error": r.error,
        }
        for r in results
    ]
    info = {"device": device_name(device), "torch": torch.__version__, "argv": sys.argv, "tiny": args.tiny}
    Path(args.json).write_text(json.dumps({"info": info, "results": rows, "flow": flow}, indent=1))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}"


def print_results(results: list[Result], device: torch.device) -> None:
    unit = "CUDA max allocated" if device.type == "cuda" else "RSS"
    # copies: host<->device transfers plus the rest of the step outside the named stages
    stage_names = ["flow", "guidance", "denoise", "decode", "copies"]
    print(
        f"\n| config | s/frame (median 2..N) | first frame s | {' | '.join(stage_names)} | peak MiB ({unit}) |"
    )
    print("|---|---|---|" + "---|" * len(stage_names) + "---|")
    for r in results:
        if r.error is not None:
            print(f"| {r.config.name} | failed: {r.error} |")
            continue
        stages = " | ".join(f"{r.stages.get(s, 0.0):.3f}" for s in stage_names)
        print(
            f"| {r.config.name} | {r.steady:.3f} | {r.frame_seconds[0]:.3f} | {stages} | {r.peak_mib:.0f} |"
        )
    for r in results:
        if r.memory_after:
            marks = ", ".join(f"{n} frames: {m:.0f} MiB" for n, m in sorted(r.memory_after.items()))
            print(f"memory {r.config.name}: {marks}")
    for r in results:
        if r.max_diff_vs_ours is not None:
            print(f"{r.config.name}: max |output - ours| {r.max_diff_vs_ours:.2e} (on [0, 1])")
    if {"baseline", "ours"} <= {r.config.name for r in results}:
        steady = {
            n: statistics.median(r.steady for r in results if r.config.name == n)
            for n in ("baseline", "ours")
        }
        ratio = steady["ours"] / steady["baseline"]
        print(f"\nours/baseline steady-state time ratio (medians): {ratio:.3f} ({1 / ratio:.2f}x faster)")


if __name__ == "__main__":
    main()
