"""``streamdiffvsr frames``: upscale a folder of numbered PNGs in order with the engine alone (no VapourSynth).

One temporal chain over the whole folder (restarted every ``max_chain`` frames if set, and when the frame size
changes); scene detection is the VapourSynth filter's job. Each PNG is written atomically, at the input's bit depth.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from streamdiffvsr.cli.arguments import absolute_path
from streamdiffvsr.cli.console import notify
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.progress import Progress
from streamdiffvsr.cli.settings.models import add_model_argument, choose_model, steps_notice
from streamdiffvsr.cli.settings.presets import add_preset_arguments, load_settings


def numbered_pngs(folder: Path) -> list[Path]:
    """The folder's .png files in natural order (frame2 before frame10)."""

    def key(path: Path) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()), key=key)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_damage(path: Path) -> str | None:
    """Why ``path`` is not a whole PNG (no signature, a chunk cut short or failing its CRC, no IEND), or None:
    a walk over its chunks, no decoding, so every frame is checked before the first one renders."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return exc.strerror or str(exc)
    if not data.startswith(PNG_SIGNATURE):
        return "no PNG signature"
    at = len(PNG_SIGNATURE)
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        end = at + 12 + length
        if end > len(data):
            return f"its {kind.decode(errors='replace')} chunk is cut short"
        if zlib.crc32(data[at + 4 : end - 4]) != struct.unpack(">I", data[end - 4 : end])[0]:
            return f"its {kind.decode(errors='replace')} chunk fails its CRC"
        if kind == b"IEND":
            return None
        at = end
    return "it ends before its IEND chunk"


def read_png(path: Path) -> tuple[np.ndarray, int]:
    """An RGB float32 (h, w, 3) image in [0, 1] and the file's maximum code value (255 or 65535)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CliError(f"cannot read {path} as a PNG")
    peak = 65535 if image.dtype == np.uint16 else 255
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    else:
        image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
    return image.astype(np.float32) / peak, peak


def write_png(path: Path, rgb: np.ndarray, peak: int) -> None:
    """Write (h, w, 3) RGB in [0, 1] as an 8- or 16-bit PNG, via a temporary name and a rename."""
    import cv2

    dtype = np.uint16 if peak == 65535 else np.uint8
    bgr = cv2.cvtColor((rgb * peak).round().astype(dtype), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", bgr)
    if not ok:
        raise CliError(f"cannot encode {path.name} as PNG")
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data.tobytes())
    os.replace(partial, path)


def engine_options(engine: dict[str, Any]) -> dict[str, Any]:
    """``StreamDiffVSR.prepare`` keywords from the preset's engine section (``options.engine_keywords``) and the
    device (the engine's own rule: ``options.resolve_device``)."""
    from streamdiffvsr.options import engine_keywords, resolve_device

    return {"device": resolve_device(engine.get("device_index")), **engine_keywords(engine)}


def run_frames(args: argparse.Namespace) -> int:
    settings = load_settings(args.preset, args.set)
    in_dir, out_dir = Path(args.in_dir), Path(args.out_dir)
    if not in_dir.is_dir():
        raise CliError(f"IN_DIR {in_dir} is not a folder")
    files = numbered_pngs(in_dir)
    if not files:
        raise CliError(f"IN_DIR {in_dir} has no .png files")
    if out_dir.exists() and out_dir.resolve() == in_dir.resolve():
        raise CliError("OUT_DIR must differ from IN_DIR")
    for path in files:
        if damage := png_damage(path):
            raise CliError(f"{path} is not a whole PNG ({damage}); replace or remove it, then rerun")
    if not args.overwrite and out_dir.is_dir():
        clash = next((out_dir / f.name for f in files if (out_dir / f.name).exists()), None)
        if clash is not None:
            raise CliError(f"{clash} exists; pass --overwrite to replace the frames in OUT_DIR")

    import torch

    from streamdiffvsr import StreamDiffVSR, StreamDiffVSRError

    choice = choose_model(args.model)
    for notice in filter(None, [choice.notice, steps_notice(settings["steps"], choice)]):
        notify(notice)
    engine = settings.section("engine")
    stream = StreamDiffVSR.from_pretrained(str(choice.path), **engine_options(engine)).stream()
    max_chain = engine.get("max_chain") or 0
    progress = Progress(enabled=not args.quiet)
    size = None
    for done, path in enumerate(files):
        rgb, peak = read_png(path)
        if (max_chain and stream.index >= max_chain) or (size is not None and rgb.shape != size):
            stream.reset()
        size = rgb.shape
        try:
            hr = stream.step(torch.from_numpy(rgb).permute(2, 0, 1)[None])
        except StreamDiffVSRError as exc:
            raise CliError(f"{path}: {exc}") from None
        out_dir.mkdir(parents=True, exist_ok=True)  # only once there is a frame to put in it
        write_png(out_dir / path.name, hr[0].permute(1, 2, 0).cpu().numpy(), peak)
        progress.update(done + 1, len(files))
        progress.draw()
    progress.finish()
    print(f"wrote {len(files)} frames to {out_dir.absolute()}", flush=True)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "frames",
        help="upscale a folder of numbered PNGs 4x, in order, with the engine alone",
        description="Upscale IN_DIR's PNGs (natural order) into OUT_DIR with the same names; one temporal chain.",
    )
    p.add_argument("in_dir", metavar="IN_DIR", type=absolute_path)
    p.add_argument("out_dir", metavar="OUT_DIR", type=absolute_path)
    add_model_argument(p)
    add_preset_arguments(p)  # only the engine keys are used
    p.add_argument("--overwrite", action="store_true", help="replace frames that exist in OUT_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_frames)
