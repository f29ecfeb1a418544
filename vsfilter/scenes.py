"""Where temporal chains start: scene cuts (an upstream ``_SceneChangePrev`` prop, or our own detection) and
the optional ``max_chain`` resets."""

from __future__ import annotations

import vapoursynth as vs

from streamdiffvsr.errors import FrameError

SCENE_PROP = "_SceneChangePrev"
DIFF_PROP = "_StreamDiffVSRSceneDiff"
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


class SceneCuts:
    """Answers "does a new scene start at frame k?" from the source frame's props, else our detection."""

    def __init__(self, clip: vs.VideoNode, detect: bool, threshold: float) -> None:
        self.clip = clip
        self.detect = detection_clip(clip) if detect else None
        self.threshold = threshold

    def is_cut(self, k: int, frame: vs.VideoFrame | None = None) -> bool:
        """Whether frame k starts a scene. ``frame`` is source frame k if the caller already has it."""
        if k == 0:
            return True
        if frame is None:
            frame = self.clip.get_frame(k)
        flag = frame.props.get(SCENE_PROP)
        if flag is not None:
            if isinstance(flag, bool) or not isinstance(flag, int):
                raise FrameError(f"source frame {k} has {SCENE_PROP}={flag!r}; it must be the integer 0 or 1")
            return flag == 1
        if self.detect is None:
            return False
        return float(self.detect.get_frame(k).props[DIFF_PROP]) > self.threshold


def chain_anchor(n: int, scene: int, max_chain: int) -> int:
    """The first frame of frame n's temporal chain: its scene's first frame, or with ``max_chain`` N the last
    multiple of N frames after it."""
    if max_chain <= 0:
        return scene
    return scene + (n - scene) // max_chain * max_chain
