"""Flicker over a stretch of frames: how much each upscale changes from the previous frame beyond what the
source itself changed, plotted with matplotlib.

Per frame k and upscale X (bicubic, each setting): mean |X_k - X_(k-1)| - mean |S_k - S_(k-1)|, in 8-bit
levels over all pixels and channels, where S is the source (a whole-factor enlargement changes no mean). Zero:
the upscale changes exactly as much as the source; above zero: it adds change of its own (flicker, crawling
texture); bicubic, which only smooths, sits at or a little below zero.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

METADATA_KEY = "streamdiffvsr-flicker"  # the plotted numbers, as JSON in a PNG text chunk


def changes(images: Iterable[np.ndarray]) -> list[float]:
    """Mean |frame - previous frame| in 8-bit levels, for each frame after the first (one frame held at a time)."""
    result, previous = [], None
    for image in images:
        if previous is not None:
            result.append(float(np.abs(image.astype(np.int16) - previous).mean()))
        previous = image
    return result


@dataclass
class Flicker:
    """Frames ``first`` + 1 .. of a stretch, the source's change at each, and each upscale's change beyond it."""

    first: int
    source: list[float]
    series: dict[str, list[float]] = field(default_factory=dict)

    @property
    def frames(self) -> list[int]:
        return list(range(self.first + 1, self.first + 1 + len(self.source)))

    def add(self, name: str, images: Iterable[np.ndarray]) -> None:
        """Series ``name`` from its frames over the stretch, in order."""
        self.series[name] = [c - s for c, s in zip(changes(images), self.source, strict=True)]


def plot_png(flicker: Flicker, title: str, cuts: list[int], fps: float) -> bytes:
    """The plot as PNG bytes, with the numbers in its ``METADATA_KEY`` text chunk."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for name, values in flicker.series.items():
        axes.plot(flicker.frames, values, label=name, linewidth=2)
    for cut in cuts:
        axes.axvline(cut, color="0.5", linestyle="--", linewidth=1)
    axes.axhline(0, color="0.2", linewidth=0.8)
    axes.set_xlabel(f"frame ({fps:g} fps)" + ("; dashed: a chain starts (scene cut)" if cuts else ""))
    axes.set_ylabel("change beyond the source's\n(mean |Δ| per frame, 8-bit levels)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    data = {"frames": flicker.frames, "series": flicker.series, "cuts": cuts}
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={METADATA_KEY: json.dumps(data)})
    return buffer.getvalue()
