"""``streamdiffvsr preview``: before a long encode, a picture of what the model does to a few moments of INPUT
(source, bicubic and each compared setting side by side), a plot of their flicker, and the encode's time."""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from streamdiffvsr.cli.arguments import absolute_path, positive, whole
from streamdiffvsr.cli.console import notify, printable
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.probe import SourceInfo
from streamdiffvsr.cli.media.vpy import generate_script
from streamdiffvsr.cli.preflight.build import preview_request
from streamdiffvsr.cli.preview.moments import check_in_video, place, spread
from streamdiffvsr.cli.segments.plan import render_threads, worker_count
from streamdiffvsr.cli.settings.models import add_model_argument
from streamdiffvsr.cli.settings.presets import add_preset_arguments, preset_reference, read_settings
from streamdiffvsr.cli.settings.schema import Settings, find_key

if TYPE_CHECKING:
    from streamdiffvsr.cli.preview.script_run import ScriptRun
    from streamdiffvsr.cli.preview.session import Preview

WARMUP_SECONDS = 1.0  # default moments: this far into a chain, so the temporal guidance has settled
MIN_WARMUP = 4
LONG_WARMUP_SECONDS = 20.0  # a chosen moment further into its chain gets a notice (all of it is rendered)


def plot_path(output: Path) -> Path:
    """The flicker plot's file, beside the picture."""
    return output.with_name(f"{output.stem}-flicker.png")


def compared_settings(
    preset: str | None, sets: list[str], compare: str | None
) -> tuple[Settings, list[tuple[str, Settings]]]:
    """The settings of --preset and --set, and (label, settings) per compared value of ``--compare KEY=V1,V2``
    (KEY a preset key, or ``preset``; without it, the one setting the encode would use). Their notices are
    printed once each, however many columns share them."""
    base = read_settings(preset, sets)
    columns = _columns(base, preset, sets, compare)
    for notice in dict.fromkeys(
        notice for each in [base, *(s for _, s in columns)] for notice in each.notices
    ):
        notify(notice)
    return base, columns


def _columns(
    base: Settings, preset: str | None, sets: list[str], compare: str | None
) -> list[tuple[str, Settings]]:
    if compare is None:
        return [(f"model ({base.source})", base)]
    key, sign, values = compare.partition("=")
    key = key.strip()
    choices = [value.strip() for value in values.split(",") if value.strip()]
    if not sign or not key or not choices:
        raise CliError(
            f"--compare {compare!r}: write KEY=VALUE,VALUE (e.g. noise=fresh,fixed or preset=balanced,quality)"
        )
    if key == "preset":
        return [(f"preset={name}", read_settings(preset_reference(name), sets)) for name in choices]
    if find_key(key).kind == "path":
        raise CliError(f"--compare {key}: a path cannot be compared; give it with --set")
    return [(f"{key}={value}", read_settings(preset, [*sets, f"{key}={value}"])) for value in choices]


def describe_settings(settings: Settings, compares_presets: bool) -> str:
    """The preset (unless the columns compare presets) and the --set overrides, for the picture's title."""
    parts = [] if compares_presets else [f"preset {Path(settings.source).name}"]
    return "  ".join(parts + ([f"--set {' '.join(settings.overrides)}"] if settings.overrides else []))


def run_preview(args: argparse.Namespace) -> int:
    began = time.perf_counter()  # the checks and imports before the script: part of an encode's start too
    base, compared = compared_settings(args.preset, args.set, args.compare)
    output = args.output
    request = preview_request(args, [each for _, each in compared], (output, plot_path(output)), notify)
    source, info, choice = request.source, request.info, request.model
    at = list(request.at) if request.at else None
    assert choice is not None  # the preview's script is always the generated one
    fps = request.fps  # the script's: ivtc and double-rate deinterlacing change it

    from streamdiffvsr.cli.preview.flicker import plot_png
    from streamdiffvsr.cli.preview.picture import compose
    from streamdiffvsr.cli.preview.publish import png_bytes, publish
    from streamdiffvsr.cli.preview.session import Variant, render_preview
    from streamdiffvsr.cli.segments.jobs import ScriptSpec

    warmup = max(MIN_WARMUP, round(fps * Fraction(WARMUP_SECONDS)))
    stretch = max(2, round(fps * Fraction(args.stretch)))

    def choose_moments(run: ScriptRun) -> list[int]:
        frames = run.output.num_frames
        if at is not None:
            check_in_video(at, frames)  # ffprobe may not have counted the frames
        moments = at or sorted(
            {place(c, frames, warmup, MIN_WARMUP, run.chain_starts) for c in spread(frames)}
        )
        for moment in moments:
            anchor = run.anchor_of(moment)
            if moment - anchor > LONG_WARMUP_SECONDS * fps:
                notify(
                    f"frame {moment} is {moment - anchor} frames into its chain (from frame {anchor}): the encode's "
                    "frame needs all of them, so the preview renders them too"
                )
        return moments

    with tempfile.TemporaryDirectory(prefix="streamdiffvsr-preview-") as scratch:
        variants = []
        for index, (label, each) in enumerate(compared):
            path = Path(scratch) / f"setting{index}.vpy"
            path.write_text(generate_script(each), encoding="utf-8")
            variants.append(
                Variant(label, ScriptSpec(path, request.script.args, render_threads(each["threads"])))
            )
        checked = time.perf_counter()
        preview = render_preview(variants, choose_moments, stretch, fps)
    compares_presets = (args.compare or "").partition("=")[0].strip() == "preset"
    title = f"{source.name}   model {choice.name}   {describe_settings(base, compares_presets)}"
    picture = png_bytes(compose(title, preview.rows, preview.sources))
    plot = plot_png(preview.flicker, f"flicker: {source.name}, model {choice.name}", preview.cuts, float(fps))
    publish({output: picture, plot_path(output): plot})
    print(printable(f"wrote {output} and {plot_path(output).name}"), flush=True)
    print_speed(
        preview, request.settings, choice.path, args.workers, info, fps, request.tools.ffmpeg,
        checked - began + preview.start_seconds,
    )  # fmt: skip
    return 0


def print_speed(
    preview: Preview,
    settings: Settings,
    model: Path,
    workers: int | None,
    info: SourceInfo,
    script_fps: Fraction,
    ffmpeg: str,
    start_seconds: float,
) -> None:
    """Each setting's measured speed, and the estimate of the encode with the first (its model steps and its
    encoder timed on the frames rendered), which is kept for ``encode --dry-run``."""
    import torch

    from streamdiffvsr.cli.preview.encoder import encoder_seconds_per_frame
    from streamdiffvsr.cli.segments import speeds
    from streamdiffvsr.cli.segments.estimate import encode_estimate, even_split, frame_seconds

    timings = {label: t.seconds_per_frame for label, t in preview.timings.items() if t.seconds_per_frame}
    if len(timings) > 1:
        print("speed: " + ", ".join(f"{label} {spf:.3f} s/frame" for label, spf in timings.items()))
    model_spf = next(iter(preview.timings.values())).seconds_per_frame  # None when every frame was cached
    fps = float(script_fps)
    encoder_spf = encoder_seconds_per_frame(ffmpeg, settings, info, preview.samples, fps)
    device, threads = preview.device, render_threads(settings["threads"])
    speed = None
    if model_spf is not None:
        spf = frame_seconds(model_spf, encoder_spf, device.partition(":")[0])
        key = speeds.speed_key(settings, model, preview.size, device, threads)
        speed = speeds.record(key, spf, start_seconds, "preview")
        if encoder_spf is not None:
            print(f"measured: model {model_spf:.3f} s/frame, encoder {encoder_spf:.3f} s/frame")
    segments = even_split(preview.frames, settings["min_frames"])
    workers = worker_count(workers, torch.cuda.device_count())
    print(encode_estimate(segments, speed, workers, device, threads).describe(fps, device))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "preview",
        help="a picture of a few upscaled moments, a flicker plot and the encode's time, before encoding",
        description="Render a few moments of INPUT with the filter the encode would run (each warmed up over the "
        "frames before it, as in the encode) and write OUTPUT (.png): per moment the source, bicubic 4x and "
        "the model's output side by side, with an enlarged crop of the most detailed region; beside it "
        "NAME-flicker.png, a plot of flicker over a few seconds. Prints the measured speed and an estimate "
        "of the whole encode.",
    )
    p.add_argument("input", metavar="INPUT", type=absolute_path, help="the source video")
    p.add_argument(
        "output", metavar="OUTPUT", type=absolute_path, help="the picture (.png); the plot goes beside it"
    )
    add_preset_arguments(p)
    add_model_argument(p)
    p.add_argument(
        "--at", metavar="TIMES|FRAMES",
        help="comma-separated moments: frame numbers (120), seconds (5.5s) or times (1:05); default: "
        "a handful spread over the video, each a second after a scene cut",
    )  # fmt: skip
    p.add_argument(
        "--compare", metavar="KEY=V1,V2",
        help="a column per value of one preset key (noise=fresh,fixed,warped) or per preset (preset=balanced,quality)",
    )  # fmt: skip
    p.add_argument(
        "--stretch", type=positive, default=2.0, metavar="SECONDS",
        help="length of the flicker plot, from the first moment on (default 2)",
    )  # fmt: skip
    p.add_argument(
        "--workers",
        type=whole(1),
        metavar="N",
        help="workers the estimate plans for (default: one per CUDA device)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT and its plot if they exist")
    p.set_defaults(func=run_preview)
