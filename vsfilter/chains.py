"""Where temporal chains start: scene cuts (an upstream ``_SceneChangePrev`` prop, or our own detection) and the
optional ``max_chain`` restarts. One rule, ``Chains``, for rendering and for planning a segmented encode; it needs
the source clip and the scene settings only, not the model."""

from __future__ import annotations

from array import array

import vapoursynth as vs

SCENE_PROP = "_SceneChangePrev"
DIFF_PROP = "_StreamDiffVSRSceneDiff"
CUT_PROP = "_StreamDiffVSRCut"
DETECT_MAX_WIDTH = 128


def detection_clip(clip: vs.VideoNode) -> vs.VideoNode:
    """A small grayscale copy of ``clip`` whose frames carry ``DIFF_PROP``: the mean absolute difference from
    the previous frame in [0, 1] (0 on frame 0), the measure ``misc.SCDetect`` used."""
    core = vs.core
    r, g, b = (core.std.ShufflePlanes(clip, plane, vs.GRAY) for plane in range(3))
    gray = core.std.Expr([r, g, b], "x y + z + 3 /", format=vs.GRAYS)
    if gray.width > DETECT_MAX_WIDTH:
        height = max(2, round(gray.height * DETECT_MAX_WIDTH / gray.width / 2) * 2)
        gray = core.resize.Bilinear(gray, DETECT_MAX_WIDTH, height)
    previous = gray[0] + gray[:-1] if gray.num_frames > 1 else gray
    return core.std.PlaneStats(gray, previous, prop=DIFF_PROP.removesuffix("Diff"))


def cut_clip(clip: vs.VideoNode, detect: bool, threshold: float) -> vs.VideoNode:
    """A 1x1 clip whose frame k carries ``CUT_PROP`` = 1 where a scene starts at k, else 0: frame 0, a source
    frame with ``_SceneChangePrev`` = 1, or, without that prop and with ``detect``, a frame whose mean gray
    difference from the previous one exceeds ``threshold``. What it reads comes through the filter graph."""
    core = vs.core
    base = core.std.BlankClip(clip, width=1, height=1, format=vs.GRAY8, keep=True)
    inputs = [base, clip] + ([detection_clip(clip)] if detect else [])

    def flag(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        value = f[1].props.get(SCENE_PROP)
        if n == 0:
            cut = True
        elif value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise vs.Error(
                    f"stream_diffvsr: source frame {n} has {SCENE_PROP}={value!r}; it must be the integer 0 or 1"
                )
            cut = value == 1
        else:
            cut = detect and float(f[2].props[DIFF_PROP]) > threshold
        out = f[0].copy()
        out.props[CUT_PROP] = int(cut)
        return out

    return core.std.ModifyFrame(base, inputs, flag)


def chain_anchor(n: int, scene: int, max_chain: int) -> int:
    """The first frame of frame n's temporal chain: its scene's first frame, or with ``max_chain`` N the last
    multiple of N frames after it."""
    if max_chain <= 0:
        return scene
    return scene + (n - scene) // max_chain * max_chain


class Chains:
    """The chain anchor of each frame of ``clip``, from the cut flags of ``cuts`` (remembered: a linear pass
    reads each flag once, as an input of the frame it belongs to). Called from several threads without a lock:
    what it remembers is a pure function of the clip, the same whichever thread writes it."""

    def __init__(
        self, clip: vs.VideoNode, *, scene_detect: bool, scene_threshold: float, max_chain: int
    ) -> None:
        self.cuts = cut_clip(clip, scene_detect, scene_threshold)
        self.max_chain = max_chain
        self._scene = array("i", [-1]) * clip.num_frames  # first frame of k's scene; -1: not known yet

    def anchor(self, n: int, cut: vs.VideoFrame | None = None) -> int:
        """Frame n's chain anchor. ``cut`` is frame n of ``cuts`` if the caller has it; flags of earlier frames
        not seen yet are fetched (a seek: a linear pass has seen them all)."""
        return chain_anchor(n, self.scene_start(n, cut), self.max_chain)

    def scene_start(self, n: int, cut: vs.VideoFrame | None = None) -> int:
        """The first frame of n's scene: back from n to a cut or to a frame whose scene is known."""
        walked = []
        k = n
        while self._scene[k] < 0:
            frame = cut if k == n and cut is not None else self.cuts.get_frame(k)
            if frame.props[CUT_PROP]:
                self._scene[k] = k
                break
            walked.append(k)
            k -= 1
        for j in reversed(walked):
            self._scene[j] = self._scene[j - 1]
        return self._scene[n]

    def starts(self, first: int, last: int) -> list[int]:
        """The frames ``first``..``last`` where a chain starts (from 0: where a segmented encode may split
        exactly), reading the cut flags of that range only: before the range's first cut, a ``max_chain``
        restart would need its scene's start from before ``first``, so none is reported there."""
        starts, cut_seen = [], False
        for k, cut in enumerate(self.cuts[first : last + 1].frames(), start=first):
            cut_seen = cut_seen or bool(cut.props[CUT_PROP])
            if cut_seen and self.anchor(k, cut) == k:
                starts.append(k)
        return starts
