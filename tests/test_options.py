"""The one home of the option rules: the matrix guess, ranges, and a schema that needs no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamdiffvsr.options import FLOW_SCALE_BOUNDS, MATRIX_NAMES, Bounds, default_precision, guess_matrix


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
