"""Render what a preview shows: for each setting, the generated script in-process, the moments' frames (each
from its chain's start, as the encode renders it) and a stretch of frames for the flicker plot."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import vapoursynth as vs

from streamdiffvsr.cli.preview.encoder import sample_size
from streamdiffvsr.cli.preview.flicker import Flicker, changes
from streamdiffvsr.cli.preview.picture import SCALE, Row
from streamdiffvsr.cli.preview.script_run import ScriptRun, Timing, rgb_array, to_rgb24
from streamdiffvsr.cli.segments.jobs import ScriptSpec

SOURCE_LABEL = "source (4x pixels)"
BICUBIC_LABEL = "bicubic 4x"
SIZED_SOURCE_LABEL = "source (pixels enlarged)"  # an output.size other than 4x: both to the output's size
SIZED_BICUBIC_LABEL = "bicubic"


@dataclass(frozen=True)
class Variant:
    """One compared setting: its label and the script that renders it."""

    label: str
    script: ScriptSpec


@dataclass
class Preview:
    """Everything rendered: the picture's rows, the flicker stretch, and each setting's speed."""

    rows: list[Row]
    sources: list[np.ndarray]
    flicker: Flicker
    cuts: list[int]
    timings: dict[str, Timing]
    start_seconds: float  # the first script's evaluation and first frames (the model's load among them)
    frames: int
    device: str
    samples: list[
        np.ndarray
    ]  # the first setting's output frames of the stretch (some), to time the encoder on
    size: tuple[int, int]  # the filter's source frame size


class Sources:
    """The filter's source frames (the source as the script prepared it: deinterlaced, cropped) as RGB24, their
    pixels enlarged and their bicubic upscale to the output's ``size`` (4x, or what output.size made it), and
    the picture's source for the crop, at a quarter of the output's size."""

    def __init__(self, source: vs.VideoNode, size: tuple[int, int]) -> None:
        core = vs.core
        self.four_times = size == (source.width * SCALE, source.height * SCALE)
        self.lowres = to_rgb24(source)
        self.pixels = to_rgb24(core.resize.Point(source, *size))
        self.bicubic = to_rgb24(core.resize.Bicubic(source, *size))
        quarter = (max(1, size[0] // SCALE), max(1, size[1] // SCALE))
        self.quarter = self.lowres if self.four_times else to_rgb24(core.resize.Bicubic(source, *quarter))

    @property
    def labels(self) -> tuple[str, str]:
        return (SOURCE_LABEL, BICUBIC_LABEL) if self.four_times else (SIZED_SOURCE_LABEL, SIZED_BICUBIC_LABEL)

    def source(self, n: int) -> np.ndarray:
        return rgb_array(self.lowres.get_frame(n))

    def enlarged(self, n: int) -> np.ndarray:
        return rgb_array(self.pixels.get_frame(n))

    def upscaled(self, n: int) -> np.ndarray:
        return rgb_array(self.bicubic.get_frame(n))

    def for_crop(self, n: int) -> np.ndarray:
        """The frame at a quarter of the output's size, where the picture looks for the most detail."""
        return rgb_array(self.quarter.get_frame(n))


def _header(frame: int, anchor: int, fps: Fraction) -> str:
    seconds = float(frame / fps)
    time = f"{int(seconds) // 3600}:{int(seconds) % 3600 // 60:02d}:{seconds % 60:06.3f}"
    return f"frame {frame}   {time}   chain from frame {anchor} ({frame - anchor} frames of warm-up)"


def render_preview(
    variants: list[Variant],
    choose_moments: Callable[[ScriptRun], list[int]],
    stretch: int,
    fps: Fraction,
) -> Preview:
    """Run every variant; the first one's filter also picks the moments (``choose_moments``). The flicker
    stretch is the ``stretch`` frames from the first moment on (fewer at the end of the video)."""
    began = time.perf_counter()
    run = ScriptRun.start(variants[0].script)
    start_seconds = time.perf_counter() - began
    moments = choose_moments(run)
    sources = Sources(run.source, (run.output.width, run.output.height))
    last = min(run.output.num_frames - 1, moments[0] + max(stretch, 2) - 1)
    stretch_frames = range(moments[0], last + 1)
    flicker = Flicker(moments[0], changes(sources.source(k) for k in stretch_frames))
    flicker.add(sources.labels[1], (sources.upscaled(k) for k in stretch_frames))
    outputs: dict[int, list[np.ndarray]] = {m: [] for m in moments}
    anchors: dict[int, int] = {}
    timings: dict[str, Timing] = {}
    cuts: list[int] = []
    samples: list[np.ndarray] = []
    keep = sample_size(run.output.width, run.output.height, len(stretch_frames))
    for index, variant in enumerate(variants):
        if index:
            run = ScriptRun.start(variant.script)
        start = run.anchor_of(moments[0])
        began = time.perf_counter()
        for frame in (start, min(start + 1, moments[0])):  # untimed: the model's load and one-off costs
            run.frame(frame)
        if not index:
            start_seconds += time.perf_counter() - began

        def stretch_images(run: ScriptRun = run, first: bool = index == 0) -> Iterator[np.ndarray]:
            for k, (image, anchor) in enumerate(
                run.frames(stretch_frames.start, last), start=stretch_frames.start
            ):
                if first and anchor == k and k > stretch_frames.start:
                    cuts.append(k)
                if k == moments[0]:
                    outputs[k].append(image)
                    anchors[k] = anchor
                if first and len(samples) < keep:
                    samples.append(image)
                yield image

        flicker.add(variant.label, stretch_images())
        for moment in moments[1:]:
            image, anchors[moment] = run.frame(moment)
            outputs[moment].append(image)
        timings[variant.label] = run.timing
    labels = (*sources.labels, *(v.label for v in variants))
    rows, lowres = [], []
    for moment in moments:
        lowres.append(sources.for_crop(moment))
        images = (sources.enlarged(moment), sources.upscaled(moment), *outputs[moment])
        rows.append(Row(_header(moment, anchors[moment], fps), labels, images))
    device = str(run.server.spec.device)
    size = (run.source.width, run.source.height)
    return Preview(
        rows, lowres, flicker, cuts, timings, start_seconds, run.output.num_frames, device, samples, size
    )
