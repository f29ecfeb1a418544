"""Every number the command line takes (issue 25, item 7): NaN, infinities, values too large for a float and
negative values are refused in one line with exit 2, never a traceback. The number options are found by walking
the parser, so a new one is covered the day it is added."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from streamdiffvsr.cli import arguments
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.main import build_parser, main
from streamdiffvsr.cli.settings.schema import KEYS, build_settings

HOSTILE = ["nan", "NaN", "inf", "-inf", "1e400", "-1", "-0.5", "0x10", ""]


def number_options() -> list[tuple[str, str]]:
    """(subcommand, option) of every option that parses its value as a number: with ``int`` or ``float`` (which
    the hostile values below catch) or a number type of ``streamdiffvsr.cli.arguments``."""
    found = []
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        for action in parser._actions:
            number = action.type in (int, float, arguments.positive) or getattr(
                action.type, "__qualname__", ""
            ).startswith(f"{arguments.whole.__name__}.")
            if number and action.option_strings:
                found.append((name, action.option_strings[0]))
    return found


def test_the_walk_finds_the_number_options() -> None:
    assert {("encode", "--start"), ("encode", "--end"), ("encode", "--workers"), ("preview", "--stretch"),
            ("preview", "--workers")} <= set(number_options())  # fmt: skip


@pytest.mark.parametrize(("command", "option"), number_options())
@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_number_is_one_line_and_exit_2(
    command: str, option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    positional = {"encode": ["in.mkv", "out.mkv"], "preview": ["in.mkv", "out.png"], "frames": ["a", "b"]}
    with pytest.raises(SystemExit) as stop:
        main([command, *positional.get(command, []), f"{option}={value}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {option}" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_fine_numbers_still_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["encode", "a.mkv", "b.mkv", "--start", "0", "--end", "5", "--workers", "1"])
    assert (args.start, args.end, args.workers) == (0, 5, 1)
    assert parser.parse_args(["preview", "a.mkv", "b.png", "--stretch", "0.5"]).stretch == 0.5


def numeric_keys() -> list[str]:
    return [f"{key.section}.{key.name}" for key in KEYS if key.kind in ("int", "float")]


@pytest.mark.parametrize("key", numeric_keys())
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1"])
def test_set_refuses_hostile_numbers_for_every_numeric_key(key: str, value: str) -> None:
    with pytest.raises(CliError) as refused:
        build_settings({}, "test", [f"{key}={value}"])
    assert "\n" not in str(refused.value) and key in str(refused.value)


@pytest.mark.parametrize("key", numeric_keys())
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_a_preset_file_with_hostile_numbers_is_refused(key: str, value: str) -> None:
    section, name = key.split(".")
    with pytest.raises(CliError) as refused:
        build_settings(tomllib.loads(f"[{section}]\n{name} = {value}\n"), "mine.toml")
    assert "\n" not in str(refused.value) and "mine.toml" in str(refused.value)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
@pytest.mark.parametrize(
    "at", ["-1s", "inf", "nan", "infs", "nans", "1e400s", "1e3s", "9" * 400 + "s", "9" * 5000, "²"]
)
def test_preview_at_refuses_hostile_moments(
    at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=24", "-frames:v", "4",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    assert main(["preview", str(clip), str(tmp_path / "out.png"), "--model", "tiny", f"--at={at}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamdiffvsr: error: --at") and err.count("\n") == 1, err[-300:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]
