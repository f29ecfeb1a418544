"""The preflight's working state (a request while it is checked) and the commands a check applies to."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamdiffvsr.cli.media.probe import SourceInfo
from streamdiffvsr.cli.media.tools import Tools
from streamdiffvsr.cli.preflight.request import Parallel
from streamdiffvsr.cli.settings.models import ModelChoice
from streamdiffvsr.cli.settings.schema import Settings
from streamdiffvsr.geometry import Geometry

ENCODE, PREVIEW = "encode", "preview"


@dataclass
class Draft:
    """A request while it is checked: the command's arguments and what the checks so far found."""

    command: str  # ENCODE or PREVIEW
    args: argparse.Namespace
    compared: tuple[Settings, ...]  # the settings, checked by the schema as they were read: encode has one
    outputs: tuple[Path, ...]  # every file the command writes (preview: the picture and its plot)
    notify: Callable[[str], None]
    muxer: str = ""
    parallel: Parallel = Parallel()
    tools: Tools | None = None
    info: SourceInfo | None = None
    at: tuple[int, ...] | None = None
    model: ModelChoice | None = None
    geometry: Geometry | None = None  # the generated script's (its first column's in a preview); None: --vpy

    @property
    def source(self) -> Path:
        return self.args.input

    @property
    def output(self) -> Path:
        return self.args.output

    @property
    def settings(self) -> Settings:
        return self.compared[0]

    @property
    def flow_weights(self) -> str | None:
        """engine.flow_weights (checked to be a file by ``check_flow_weights``)."""
        return self.settings["flow_weights"]

    @property
    def vpy(self) -> Path | None:
        """The user's script (encode's --vpy); None: the generated one."""
        return self.args.vpy if self.command == ENCODE else None
