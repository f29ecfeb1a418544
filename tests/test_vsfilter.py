"""The VapourSynth filter on the real core with the tiny checkpoint: format, exactness in any request order and
thread count, scene cuts, errors, flat memory."""

from __future__ import annotations

import gc
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

vs = pytest.importorskip("vapoursynth")

from streamdiffvsr import MIN_SIDE, StreamDiffVSR  # noqa: E402
from streamdiffvsr.options import DEFAULT_NOISE, NOISE_MODES, OPTIONS  # noqa: E402
from streamdiffvsr.vsfilter import ANCHOR_PROP, frame_server, stream_diffvsr  # noqa: E402
from streamdiffvsr.vsfilter.chains import Chains  # noqa: E402
from streamdiffvsr.vsfilter.server import FrameServer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

core = vs.core
W, H = 32, 24
FAST = {"flow": "dis", "steps": 1}


def pattern(frames: int, kind: int, width: int = W, height: int = H, start: int = 0) -> np.ndarray:
    """Smooth, slowly moving RGB content in [0, 1]: (frames, 3, h, w) float32. Kind 0 is bright, kind 1 dark."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(start, start + frames):
        if kind == 0:
            planes = [
                0.7 + 0.2 * np.sin((x + 0.5 * t) / 3),
                0.7 + 0.2 * np.cos((y - 0.4 * t) / 4),
                0.6 + 0.2 * np.sin((x + y + 0.3 * t) / 5),
            ]
        else:
            planes = [
                0.25 + 0.15 * np.cos((x - 0.5 * t) / 2),
                0.2 + 0.15 * np.sin((y + 0.5 * t) / 3),
                0.3 + 0.1 * np.cos((x - y) / 4),
            ]
        out.append(np.stack(planes))
    return np.ascontiguousarray(np.clip(out, 0, 1), dtype=np.float32)


def numpy_clip(data: np.ndarray, fmt: int = vs.RGBS) -> vs.VideoNode:
    """A clip whose frame n is data[n] (values rounded to the format's precision)."""
    frames, _, height, width = data.shape
    blank = core.std.BlankClip(
        format=fmt, width=width, height=height, length=frames, fpsnum=25, fpsden=1, keep=True
    )

    def make(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for plane in range(3):
            np.copyto(np.asarray(out[plane]), data[n, plane], casting="same_kind")
        out.props["SourceIndex"] = n
        return out

    return core.std.ModifyFrame(blank, blank, make)


def to_array(frame: vs.VideoFrame) -> np.ndarray:
    return np.stack([np.asarray(frame[plane]).copy() for plane in range(3)])


def fresh_stream(
    model: Path, data: np.ndarray, *, flow: str = "dis", steps: int = 1, noise: str = DEFAULT_NOISE
) -> list[np.ndarray]:
    """The ground truth: the frames through one new engine stream, in order."""
    engine = StreamDiffVSR.from_pretrained(str(model), device="cpu", flow=flow, num_steps=steps, noise=noise)
    stream = engine.stream()
    return [stream.step(torch.from_numpy(frame)[None])[0].numpy() for frame in data]


def filtered(clip: vs.VideoNode, model: Path, *, outputs: int | None = None, **kwargs) -> vs.VideoNode:
    """The filter with VapourSynth's own output cache off (so every request reaches it), optionally with a
    smaller output cache of its own (so requests recompute instead of hitting it)."""
    settings = {**FAST, **kwargs}
    out = stream_diffvsr(clip, model=str(model), **settings)
    if outputs is not None:
        frame_server(out).outputs.capacity = outputs
    core.std.SetVideoCache(out, 0)
    return out


@pytest.fixture
def threads():
    """Set core.num_threads for one test, restoring it afterwards."""
    before = core.num_threads

    def set_threads(n: int) -> None:
        core.num_threads = n

    yield set_threads
    core.num_threads = before


SCENE = pattern(12, 0)


@pytest.fixture(scope="module")
def reference(one_cpu_thread: None, tiny_checkpoint: Path) -> list[np.ndarray]:
    return fresh_stream(tiny_checkpoint, SCENE)


# --- format, size, length, fps, props ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [vs.RGBS, vs.RGBH])
def test_output_format_size_length_props(tiny_checkpoint: Path, fmt: int) -> None:
    src = numpy_clip(SCENE[:3], fmt)
    src = core.std.SetFrameProps(src, _Matrix=0, UserProp="kept")
    out = stream_diffvsr(src, model=str(tiny_checkpoint), **FAST)
    assert out.format.id == fmt
    assert (out.width, out.height) == (4 * W, 4 * H)
    assert out.num_frames == 3
    assert (out.fps.numerator, out.fps.denominator) == (25, 1)
    for n in range(3):
        frame = out.get_frame(n)
        props = frame.props
        assert props["SourceIndex"] == n
        assert props["UserProp"] == "kept"
        assert props["_Matrix"] == 0
        assert props[ANCHOR_PROP] == 0
        values = to_array(frame)
        assert values.shape == (3, 4 * H, 4 * W)
        assert values.min() >= 0 and values.max() <= 1


def test_instances_share_one_model(tiny_checkpoint: Path) -> None:
    a = stream_diffvsr(numpy_clip(SCENE[:2]), model=str(tiny_checkpoint), **FAST)
    b = stream_diffvsr(numpy_clip(SCENE[:3]), model=str(tiny_checkpoint), flow="none", steps=2, seed=1)
    assert frame_server(a).engine.components is frame_server(b).engine.components


@pytest.mark.slow
def test_linear_pass_equals_engine_stream(tiny_checkpoint: Path, reference: list[np.ndarray]) -> None:
    out = filtered(core.std.AssumeFPS(numpy_clip(SCENE), fpsnum=30000, fpsden=1001), tiny_checkpoint)
    assert (out.fps.numerator, out.fps.denominator) == (30000, 1001)
    for n in range(len(SCENE)):
        frame = out.get_frame(n)
        assert frame.props[ANCHOR_PROP] == 0
        np.testing.assert_array_equal(to_array(frame), reference[n])


@pytest.mark.slow
def test_default_steps_match_engine(tiny_checkpoint: Path) -> None:
    data = SCENE[:3]
    expected = fresh_stream(tiny_checkpoint, data, steps=4)
    out = stream_diffvsr(numpy_clip(data), model=str(tiny_checkpoint), flow="dis")
    for n in (2, 0, 1):
        np.testing.assert_array_equal(to_array(out.get_frame(n)), expected[n])


# --- exactness in any order, with 1 and 4 threads -----------------------------------------------------------

ORDERS = {
    "sequential": list(range(12)),
    "reverse": list(range(11, -1, -1)),
    "random": random.Random(3).sample(range(12), 12),
    "repeated": [5, 5, 2, 9, 2, 5, 0, 11, 11, 7, 7, 3],
}


CASES = [("sync", 1), ("async", 1), ("async", 4)]  # sync requests run one at a time whatever the threads


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "num_threads"), CASES)
@pytest.mark.parametrize("order", list(ORDERS))
def test_any_order_bit_identical(
    tiny_checkpoint: Path, reference: list[np.ndarray], threads, num_threads: int, order: str, mode: str
) -> None:
    threads(num_threads)
    out = filtered(numpy_clip(SCENE), tiny_checkpoint, outputs=1, snapshot_interval=3)
    frames = ORDERS[order]
    if mode == "sync":
        results = [out.get_frame(n) for n in frames]
    else:  # all requests in flight at once: callbacks arrive out of order and on different threads
        results = [future.result() for future in [out.get_frame_async(n) for n in frames]]
    for n, frame in zip(frames, results, strict=True):
        assert frame.props[ANCHOR_PROP] == 0
        np.testing.assert_array_equal(to_array(frame), reference[n], err_msg=f"frame {n} ({order}, {mode})")


@pytest.mark.slow
@pytest.mark.parametrize(
    "noise", [mode for mode in NOISE_MODES if mode != DEFAULT_NOISE]
)  # the default: above
def test_any_order_bit_identical_in_every_noise_mode(tiny_checkpoint: Path, threads, noise: str) -> None:
    threads(4)
    expected = fresh_stream(tiny_checkpoint, SCENE, noise=noise)
    out = filtered(numpy_clip(SCENE), tiny_checkpoint, outputs=1, snapshot_interval=3, noise=noise)
    frames = ORDERS["random"] + ORDERS["repeated"]
    results = [future.result() for future in [out.get_frame_async(n) for n in frames]]
    for n, frame in zip(frames, results, strict=True):
        np.testing.assert_array_equal(to_array(frame), expected[n], err_msg=f"frame {n} ({noise})")


@pytest.mark.slow
def test_bounded_snapshots_still_exact(tiny_checkpoint: Path, reference: list[np.ndarray], threads) -> None:
    threads(2)
    out = filtered(numpy_clip(SCENE), tiny_checkpoint, outputs=1, snapshot_interval=2)
    server = frame_server(out)
    server.snapshots.budget = 0  # keep none
    order = random.Random(7).choices(range(12), k=16)
    results = [future.result() for future in [out.get_frame_async(n) for n in order]]
    for n, frame in zip(order, results, strict=True):
        np.testing.assert_array_equal(to_array(frame), reference[n])
    assert server.snapshots.entries == {}


def test_thinned_snapshots_still_exact(tiny_checkpoint: Path, reference: list[np.ndarray]) -> None:
    """With interval 1 the 12-frame chain is thinned (snapshots 4+ frames back kept at 2x spacing): seeks back
    anywhere stay exact and cost no more than the distance to the kept snapshot before them."""
    out = filtered(numpy_clip(SCENE), tiny_checkpoint, outputs=1, snapshot_interval=1)
    server = frame_server(out)
    for n in range(len(SCENE)):
        out.get_frame(n)
    assert sorted(server.snapshots.entries) == [2, 4, 6, 8, 9, 10, 11]  # 1, 3, 5, 7 thinned out
    for n in random.Random(11).sample(range(len(SCENE)), 8):
        np.testing.assert_array_equal(to_array(out.get_frame(n)), reference[n], err_msg=f"frame {n}")


def test_seek_after_first_pass_costs_at_most_interval(tiny_checkpoint: Path) -> None:
    interval = 3
    out = filtered(numpy_clip(SCENE), tiny_checkpoint, outputs=1, snapshot_interval=interval)
    server = frame_server(out)
    first = [to_array(out.get_frame(n)) for n in range(len(SCENE))]
    assert server.steps_run == len(SCENE)
    for n in random.Random(5).sample(range(len(SCENE)), 6):
        before = server.steps_run
        np.testing.assert_array_equal(to_array(out.get_frame(n)), first[n])
        assert server.steps_run - before <= interval


def test_seeks_fetch_frames_without_the_lock_a_few_at_a_time(
    tiny_checkpoint: Path, reference: list[np.ndarray]
) -> None:
    """A seek fetches its source frames and cut flags with the server's lock released (a get_frame under it can
    deadlock VapourSynth), ``seek_frames`` at a time, for no extra step."""
    servers: list[FrameServer] = []

    def checked(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        if servers[0].lock.locked():  # requests run one at a time: only this thread could hold it
            raise vs.Error(f"source frame {n} was requested under the frame server's lock")
        return f

    source = numpy_clip(SCENE)
    outs = [
        filtered(
            core.std.ModifyFrame(source, source, checked), tiny_checkpoint, outputs=1, snapshot_interval=3
        )
    ]
    outs.append(filtered(numpy_clip(SCENE), tiny_checkpoint, outputs=1, snapshot_interval=3))
    servers += [frame_server(out) for out in outs]
    servers[0].seek_frames = 2
    for n in (11, 4, 7, 0, 10, 2):
        for out in outs:
            np.testing.assert_array_equal(to_array(out.get_frame(n)), reference[n], err_msg=f"frame {n}")
    assert servers[1].seek_frames > len(SCENE)
    assert servers[0].steps_run == servers[1].steps_run


def test_cached_repeat_costs_nothing(tiny_checkpoint: Path) -> None:
    out = filtered(numpy_clip(SCENE[:4]), tiny_checkpoint)
    server = frame_server(out)
    first = to_array(out.get_frame(3))
    steps = server.steps_run
    for n in (3, 2, 1, 0, 3):
        out.get_frame(n)
    assert server.steps_run == steps
    np.testing.assert_array_equal(to_array(out.get_frame(3)), first)


# --- scene cuts ---------------------------------------------------------------------------------------------


def test_detected_cut_resets_chain(tiny_checkpoint: Path) -> None:
    a, b = pattern(5, 0), pattern(5, 1, start=20)
    expected = fresh_stream(tiny_checkpoint, a) + fresh_stream(tiny_checkpoint, b)
    out = filtered(numpy_clip(np.concatenate([a, b])), tiny_checkpoint, outputs=1, snapshot_interval=2)
    for n in [9, 5, 4, 6, 0, 7, 3, 8, 1, 2]:
        frame = out.get_frame(n)
        assert frame.props[ANCHOR_PROP] == (5 if n >= 5 else 0), n
        np.testing.assert_array_equal(to_array(frame), expected[n], err_msg=f"frame {n}")


def test_scene_change_prop_wins(tiny_checkpoint: Path) -> None:
    """An upstream _SceneChangePrev=1 cuts (even with detection off); =0 overrides our own detection."""
    data = SCENE[:6]
    src = numpy_clip(data)
    marked = src[:3] + core.std.SetFrameProps(src[3], _SceneChangePrev=1) + src[4:]
    out = filtered(marked, tiny_checkpoint, scene_detect=False)
    expected = fresh_stream(tiny_checkpoint, data[3:])
    assert [out.get_frame(n).props[ANCHOR_PROP] for n in range(6)] == [0, 0, 0, 3, 3, 3]
    np.testing.assert_array_equal(to_array(out.get_frame(4)), expected[1])

    spliced = numpy_clip(np.concatenate([pattern(2, 0), pattern(2, 1)]))
    assert filtered(spliced, tiny_checkpoint).get_frame(3).props[ANCHOR_PROP] == 2
    no_cut = core.std.SetFrameProps(spliced, _SceneChangePrev=0)
    assert filtered(no_cut, tiny_checkpoint).get_frame(3).props[ANCHOR_PROP] == 0
    assert filtered(spliced, tiny_checkpoint, scene_detect=False).get_frame(3).props[ANCHOR_PROP] == 0


def test_max_chain(tiny_checkpoint: Path, reference: list[np.ndarray]) -> None:
    out = filtered(numpy_clip(SCENE[:7]), tiny_checkpoint, max_chain=3)
    anchors = [out.get_frame(n).props[ANCHOR_PROP] for n in (6, 5, 4, 3, 2, 1, 0)]
    assert anchors == [6, 3, 3, 3, 0, 0, 0]
    expected = fresh_stream(tiny_checkpoint, SCENE[3:5])
    np.testing.assert_array_equal(to_array(out.get_frame(4)), expected[1])
    np.testing.assert_array_equal(to_array(out.get_frame(2)), reference[2])


@pytest.mark.parametrize(("detect", "max_chain"), [(True, 0), (True, 2), (False, 3)])
def test_chain_starts_need_no_model_and_are_the_rendered_anchors(
    tiny_checkpoint: Path, detect: bool, max_chain: int
) -> None:
    """Chains.starts (what a segmented encode plans with) from the source and scene settings alone gives exactly
    the frames that rendering, in any order, marks as their own chain's anchor."""
    src = numpy_clip(np.concatenate([SCENE[:3], pattern(3, 1), SCENE[3:5]]))
    marked = src[:4] + core.std.SetFrameProps(src[4], _SceneChangePrev=1) + src[5:]
    chains = Chains(marked, scene_detect=detect, scene_threshold=0.1, max_chain=max_chain)
    planned = chains.starts(0, marked.num_frames - 1)
    out = filtered(marked, tiny_checkpoint, scene_detect=detect, max_chain=max_chain)
    order = random.Random(max_chain).sample(range(marked.num_frames), marked.num_frames)
    rendered = sorted(n for n in order if out.get_frame(n).props[ANCHOR_PROP] == n)
    assert planned == rendered
    assert (
        planned
        == {(True, 0): [0, 3, 4, 6], (True, 2): [0, 2, 3, 4, 6], (False, 3): [0, 3, 4, 7]}[
            (detect, max_chain)
        ]
    )


def test_chain_starts_of_a_range_read_that_range_alone() -> None:
    """Chains.starts(first, last), where preview places its moments, reads the cut flags of the range only (no
    walk back to the scene's start, which may be an hour of source earlier) and gives the starts a scan from
    frame 0 finds there, from the range's first cut on."""
    src = numpy_clip(np.concatenate([SCENE[:3], pattern(3, 1), SCENE[3:9]]))  # scenes at 0, 3, 6

    def unread(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        if n < 3:  # frame 4's scene detection reads frame 3, nothing reads before it
            raise vs.Error(f"source frame {n} was read")
        return f

    def chains(clip: vs.VideoNode) -> Chains:
        return Chains(clip, scene_detect=True, scene_threshold=0.1, max_chain=2)

    assert chains(src).starts(0, 11) == [0, 2, 3, 5, 6, 8, 10]
    assert chains(core.std.ModifyFrame(src, src, unread)).starts(4, 11) == [6, 8, 10]  # 5: scene 3's restart


# --- errors -------------------------------------------------------------------------------------------------


def raises(match: str, clip: vs.VideoNode | object, **kwargs) -> None:
    with pytest.raises(vs.Error, match=match):
        stream_diffvsr(clip, **{"model": "tiny", **FAST, **kwargs})


def test_yuv_input_names_the_resize_call() -> None:
    hd = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=2)
    raises(
        r'YUV420P8 is not supported.*core\.resize\.Bicubic\(clip, format=vs\.RGBS, matrix_in_s="709"\)',
        core.std.SetFrameProps(hd, _Matrix=1),
    )
    raises(r'matrix_in_s="2020ncl"', core.std.SetFrameProps(hd, _Matrix=9))
    raises(r'matrix_in_s="170m"', hd)  # no _Matrix prop, SD size
    big = core.std.BlankClip(format=vs.YUV420P10, width=1920, height=1080, length=1)
    raises(r'matrix_in_s="709"', core.std.SetFrameProps(big, _Matrix=2))  # unspecified, HD size
    raises(
        r"RGB24 is not supported.*core\.resize\.Bicubic\(clip, format=vs\.RGBS\)",
        core.std.BlankClip(format=vs.RGB24, width=32, height=32),
    )
    raises(r"GrayS is not supported", core.std.BlankClip(format=vs.GRAYS, width=32, height=32))


def test_suggested_resize_call_works() -> None:
    """The call in the message, run as written, gives a clip the filter accepts with the right colours."""
    clip = core.std.SetFrameProps(
        core.std.BlankClip(format=vs.YUV420P8, width=32, height=32, length=1, color=[63, 102, 240]), _Matrix=1
    )
    with pytest.raises(vs.Error) as info:
        stream_diffvsr(clip, model="tiny", **FAST)
    call = str(info.value).split("clip = ", 1)[1]
    rgb = eval(call, {"core": core, "vs": vs, "clip": clip})
    red = to_array(rgb.get_frame(0))[:, 16, 16]
    np.testing.assert_allclose(red, [1, 0, 0], atol=0.02)
    assert stream_diffvsr(rgb, model="tiny", **FAST).format.id == vs.RGBS


def test_variable_format_and_size() -> None:
    a = core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=1)
    b = core.std.BlankClip(format=vs.RGBH, width=32, height=32, length=1)
    c = core.std.BlankClip(format=vs.RGBS, width=48, height=32, length=1)
    raises("variable format", core.std.Splice([a, b], mismatch=True))
    raises("variable frame size", core.std.Splice([a, c], mismatch=True))
    raises("must be a vs.VideoNode", "not a clip")


def test_too_small() -> None:
    raises(
        f"7x32; each side must be at least {MIN_SIDE} pixels",
        core.std.BlankClip(format=vs.RGBS, width=7, height=32),
    )
    raises(f"at least {MIN_SIDE}", core.std.BlankClip(format=vs.RGBS, width=32, height=MIN_SIDE - 1))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("seed", -5, "seed must be an integer from 0 to"),
        ("seed", 1.5, "seed must be an integer from 0 to"),
        ("flow_scale", "2", "flow_scale must be a number above 0, up to 4"),
        ("scene_threshold", None, "scene_threshold must be a number above 0, up to 1"),
        ("scene_detect", "no", "scene_detect must be true or false"),
        ("scene_detect", 1, "scene_detect must be true or false"),
        ("compile", 0, "compile must be true or false"),
        ("steps", True, "steps must be an integer from 1 to 50"),
        ("steps", 500, "steps must be an integer from 1 to 50"),
        ("timestep_spacing", "bogus", "timestep_spacing must be one of leading, trailing, linspace, or auto"),
    ],
)
def test_wrong_type_or_sign_fails_at_the_call(option: str, value: object, message: str) -> None:
    raises(
        f"{message}.*got {re.escape(repr(value))}",
        core.std.BlankClip(format=vs.RGBS, width=32, height=32),
        **{option: value},
    )


@pytest.mark.parametrize("option", [o.name for o in OPTIONS if o.name != "device_index"])  # resolve_device's
def test_every_option_is_checked_at_the_call(option: str) -> None:
    """A value no option takes is refused by name when the filter is called: an option the filter forgets to
    pass to its checks would be let through here."""
    raises(
        f"{option} must be .*got \\[1\\]",
        core.std.BlankClip(format=vs.RGBS, width=32, height=32),
        **{option: [1]},
    )


def test_wrong_scene_prop_type_names_the_prop_and_frame() -> None:
    clip = core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=3)
    marked = clip[:2] + core.std.SetFrameProps(clip[2], _SceneChangePrev="yes")
    out = stream_diffvsr(marked, model="tiny", **FAST)
    with pytest.raises(
        vs.Error, match="source frame 2 has _SceneChangePrev='yes'; it must be the integer 0 or 1"
    ):
        out.get_frame(2)


def test_truncated_prompt_embedding_fails_at_the_first_frame(tiny_checkpoint: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_checkpoint, damaged)
    embeds = damaged / "prompt_embeds.safetensors"
    embeds.write_bytes(embeds.read_bytes()[:100])
    clip = core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=1)
    out = stream_diffvsr(clip, model=str(damaged), **FAST)
    with pytest.raises(
        vs.Error,
        match=f"frame 0: cannot read the prompt embedding {re.escape(str(embeds))} .*download or copy it again",
    ):
        out.get_frame(0)


def test_networks_load_at_the_first_frame_not_at_the_call(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The call checks the checkpoint and its configs; the weights are read only when a frame is rendered, so a
    script evaluated to plan (chain starts) never loads them."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, copy)
    clip = numpy_clip(np.concatenate([SCENE[:3], pattern(2, 1)]))
    out = stream_diffvsr(clip, model=str(copy), **FAST)
    assert frame_server(out).chains.starts(0, 4) == [0, 3]
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # damaged after the call: only a later load can notice
    with pytest.raises(vs.Error, match="frame 0: could not load the checkpoint"):
        out.get_frame(0)
    shutil.rmtree(copy / "scheduler")
    with pytest.raises(vs.Error, match="could not load the scheduler config"):
        stream_diffvsr(clip, model=str(copy), **FAST)


def test_device_index() -> None:
    clip = core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=1)
    if torch.cuda.is_available():
        raises(r"device_index=99 is out of range", clip, device_index=99)
    else:
        raises(r"device_index=0 asks for a CUDA device, but CUDA is not available", clip, device_index=0)
    raises(r"device_index must be an integer or None", clip, device_index="0")


def test_missing_model_and_bad_settings(tmp_path: Path) -> None:
    clip = core.std.BlankClip(format=vs.RGBS, width=32, height=32, length=1)
    raises(r"model '/nonexistent/model': no such checkpoint folder", clip, model="/nonexistent/model")
    raises(r"not a Stream-DiffVSR checkpoint folder", clip, model=str(tmp_path))
    raises(r"'nobody/no-such-model' is not in the Hugging Face cache", clip, model="nobody/no-such-model")
    raises(r"steps must be an integer from 1 to 50", clip, steps=0)
    raises(r"precision must be one of fp32, fp16, bf16", clip, precision="fp8")
    raises(r"flow must be one of", clip, flow="farneback")
    raises(r"noise must be one of fresh, fixed, warped, got 'frozen'", clip, noise="frozen")
    raises(r"flow_scale must be a number above 0, up to 4, got 5.0", clip, flow_scale=5.0)
    raises(r"scene_threshold must be a number above 0, up to 1", clip, scene_threshold=0)
    raises(r"max_chain must be an integer >= 0", clip, max_chain=-1)
    raises(r"snapshot_interval must be an integer >= 1", clip, snapshot_interval=0)
    with pytest.warns(FutureWarning, match="checkpoint_interval is now snapshot_interval; .* version 0.3"):
        raises(r"snapshot_interval must be an integer >= 1", clip, checkpoint_interval=0)  # still read


# --- memory -------------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
def test_memory_flat_over_hundreds_of_frames(tiny_checkpoint: Path) -> None:
    frames, warmup = 320, 64
    base = numpy_clip(pattern(4, 0, width=32, height=32))
    src = core.std.Loop(base, times=frames // 4)
    out = filtered(src, tiny_checkpoint, flow="none", scene_detect=False)
    server = frame_server(out)
    server.snapshots.budget = 0  # only the minimum: the test sees snapshots taken and evicted throughout
    samples = {}
    for n in range(frames):
        out.get_frame(n)
        if n % 16 == 15:
            gc.collect()
            samples[n] = rss_bytes()
    # Peaks after a warm-up, not two points: RSS wobbles by several MiB on a loaded machine (allocator arenas of
    # VapourSynth's threads). A leak of one output frame per frame (192 KiB here) would raise the second half's
    # peak by about 24 MiB.
    half = warmup + (frames - warmup) // 2
    first = max(v for k, v in samples.items() if warmup <= k < half)
    second = max(v for k, v in samples.items() if k >= half)
    growth = second - first
    assert growth < 12 << 20, f"RSS peak grew by {growth / 2**20:.1f} MiB over {frames - half} frames"
    assert len(server.outputs.entries) <= server.outputs.capacity
    assert server.snapshots.entries == {}
