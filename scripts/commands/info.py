"""``streamdiffvsr info``: what this machine has for the encode pipeline, one line per component."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Iterator

from streamdiffvsr.cli.media.tools import find_tool, has_encoder, tool_version
from streamdiffvsr.cli.settings.codecs import CODECS, DEFAULT_CODEC

REQUIRED_PLUGINS = {
    "bs": "bestsource (video source)",
    "bwdif": "bwdif (deinterlacing: input.deinterlace auto, bwdif, bwdif-double)",
    "vivtc": "vivtc (inverse telecine: input.deinterlace=ivtc)",
}


def _python() -> Iterator[tuple[str, str, bool]]:
    yield "python", f"{platform.python_version()} ({sys.executable})", sys.version_info >= (3, 12)


def _torch() -> Iterator[tuple[str, str, bool]]:
    try:
        import torch
    except ImportError as exc:
        yield "torch", f"missing ({exc})", False
        return
    yield "torch", torch.__version__, True
    if not torch.cuda.is_available():
        yield "cuda", "no CUDA device (the engine runs on the CPU: slow)", True
        return
    for index in range(torch.cuda.device_count()):
        prop = torch.cuda.get_device_properties(index)
        yield (
            f"cuda:{index}",
            f"{prop.name}, {prop.total_memory / 2**30:.0f} GiB (CUDA {torch.version.cuda})",
            True,
        )


def _vapoursynth() -> Iterator[tuple[str, str, bool]]:
    try:
        import vapoursynth as vs
    except ImportError as exc:
        yield "vapoursynth", f"missing ({exc})", False
        return
    yield "vapoursynth", f"{vs.__version__} (python module)", True
    vspipe = find_tool("vspipe")
    version = tool_version(vspipe, "--version") if vspipe else ""
    yield "vspipe", f"{vspipe} {version}".strip() if vspipe else "missing", vspipe is not None
    found = {plugin.namespace for plugin in vs.core.plugins()}
    for namespace, what in REQUIRED_PLUGINS.items():
        ok = namespace in found
        yield f"  {namespace}", f"{what}: {'found' if ok else 'missing'}", ok


def _ffmpeg() -> Iterator[tuple[str, str, bool]]:
    ffmpeg = find_tool("ffmpeg")
    if ffmpeg is None:
        yield "ffmpeg", "missing", False
    else:
        yield "ffmpeg", f"{ffmpeg} ({tool_version(ffmpeg)})", True
        for codec in CODECS.values():  # x265 is the default codec: the others are optional
            found = has_encoder(ffmpeg, codec.encoder)
            detail = "found" if found else f"missing (encoder.codec={codec.name} cannot run)"
            yield f"  {codec.encoder}", detail, found or codec.name != DEFAULT_CODEC
    ffprobe = find_tool("ffprobe")
    yield "ffprobe", ffprobe or "missing", ffprobe is not None


def _models() -> Iterator[tuple[str, str, bool]]:
    from huggingface_hub import constants

    from streamdiffvsr import DEFAULT_MODEL, ModelLoadError, resolve_checkpoint
    from streamdiffvsr.cli.settings.models import EMBEDDED_MODEL
    from streamdiffvsr.layout import cache_dir

    try:
        yield "model", f"{DEFAULT_MODEL}: cached at {resolve_checkpoint(DEFAULT_MODEL, download=False)}", True
    except ModelLoadError:
        yield (
            "model",
            f"{DEFAULT_MODEL}: not cached (run `streamdiffvsr download`); the embedded {EMBEDDED_MODEL!r} runs",
            True,
        )
    yield "hf cache", str(constants.HF_HUB_CACHE), True
    yield "own cache", str(cache_dir()), True


def run_info(args: argparse.Namespace) -> int:
    missing = 0
    for section in (_python, _torch, _vapoursynth, _ffmpeg, _models):
        for label, detail, ok in section():
            missing += not ok
            print(f"{label:<12} {detail}{'' if ok else '   <- needed'}")
    if missing:
        print(
            f"streamdiffvsr: {missing} needed component(s) missing; bash scripts/setup.sh installs them",
            file=sys.stderr,
        )
    return 1 if missing else 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info", help="report Python, torch/CUDA, VapourSynth and plugins, ffmpeg/x265, models"
    )
    p.set_defaults(func=run_info)
