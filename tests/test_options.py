"""The one home of the option rules: the matrix guess, ranges, and a schema that needs no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamdiffvsr.options import (
    FLOW_SCALE_BOUNDS,
    MATRIX_NAMES,
    OPTIONS,
    OPTIONS_BY_NAME,
    Bounds,
    Option,
    OptionError,
    check_options,
    default_precision,
    engine_keywords,
    guess_matrix,
)


@pytest.mark.parametrize(
    ("width", "height", "matrix"),
    [(1920, 1080, "709"), (1280, 720, "709"), (1024, 600, "709"), (720, 576, "470bg"), (720, 480, "170m"),
     (1100, 400, "170m"), (640, 360, "170m")],
)  # fmt: skip
def test_guess_matrix_by_frame_size(width: int, height: int, matrix: str) -> None:
    assert MATRIX_NAMES[guess_matrix(width, height)] == matrix


def test_bounds() -> None:
    assert 0 not in FLOW_SCALE_BOUNDS and 0.01 in FLOW_SCALE_BOUNDS and 4 in FLOW_SCALE_BOUNDS
    assert 4.01 not in FLOW_SCALE_BOUNDS and FLOW_SCALE_BOUNDS.describe() == "(0, 4]"
    assert 7 in Bounds(1) and 0 not in Bounds(1) and Bounds(1).describe() == "[1, inf)"


def test_default_precision() -> None:
    assert default_precision("cuda:1") == "bf16" and default_precision("cpu") == "fp32"


def test_schema_and_options_import_without_torch() -> None:
    code = "import sys, streamdiffvsr.cli.settings.schema; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_setting_has_one_home() -> None:
    """The filter's keywords and defaults, the preset schema's engine keys and the engine's checks all come from
    options.OPTIONS: a setting added there reaches all three."""
    import inspect

    from streamdiffvsr.cli.settings.schema import KEYS
    from streamdiffvsr.vsfilter import stream_diffvsr

    engine_keys = {k.name: k for k in KEYS if k.section == "engine"}
    assert list(engine_keys) == [o.name for o in OPTIONS]
    for option in OPTIONS:
        key = engine_keys[option.name]
        assert (key.default, key.allowed()) == (option.default, option.allowed()), option.name
    parameters = inspect.signature(stream_diffvsr).parameters
    for option in OPTIONS:
        if option.name != "device_index":  # the device rule checks it: options.resolve_device
            assert parameters[option.name].default == option.default, option.name
    assert OPTIONS_BY_NAME["noise"].default == "fixed"


@pytest.mark.parametrize(
    ("keywords", "message"),
    [({"num_steps": 500}, "steps must be an integer from 1 to 50, got 500"),
     ({"flow_scale": 8.0}, "flow_scale must be a number above 0, up to 4"),
     ({"seed": -1}, "seed must be an integer from 0 to"),
     ({"compile": "yes"}, "compile must be true or false")],
)  # fmt: skip
def test_engine_checks_the_same_rules(keywords: dict, message: str) -> None:
    from streamdiffvsr import StreamDiffVSR

    with pytest.raises(OptionError, match=message):
        StreamDiffVSR.prepare("tiny", device="cpu", **keywords)


def another_value(option: Option) -> object:
    """A value ``option`` allows other than its default."""
    if option.kind == "bool":
        return not option.default
    if option.kind == "choice":
        return next(choice for choice in option.choices if choice != option.default)
    if option.kind == "path":
        return "/some/file"
    low = option.bounds.low if option.bounds else 0
    return (
        (option.default or low) + 1 if option.kind == "int" else (option.default or low) / 2 + low / 2 + 0.25
    )


def test_engine_keywords_carry_every_engine_setting() -> None:
    """Each engine option's value reaches the engine under its own keyword, and nothing else does."""
    values = {o.name: another_value(o) for o in OPTIONS}
    assert check_options(values) == values  # every value allowed and other than the default
    keywords = engine_keywords(values)
    assert keywords == {o.engine: values[o.name] for o in OPTIONS if o.engine}
    assert all(values[o.name] != o.default for o in OPTIONS)
