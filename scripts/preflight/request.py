"""What the preflight hands on: one ``Request``, immutable, every path absolute, every fact checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from streamdiffvsr.cli.media.ffmpeg_cmd import EncodeCommands
from streamdiffvsr.cli.media.probe import SourceInfo
from streamdiffvsr.cli.media.tools import Tools
from streamdiffvsr.cli.segments.jobs import ScriptSpec
from streamdiffvsr.cli.settings.models import ModelChoice
from streamdiffvsr.cli.settings.schema import Settings
from streamdiffvsr.geometry import Geometry


@dataclass(frozen=True)
class ClusterAccess:
    """What joining the Ray cluster at ``address`` takes, found without joining it: its token (None: token
    authentication is off) and where the token was found (for a message)."""

    address: str
    token: str | None = field(default=None, repr=False)
    token_from: str = "$RAY_AUTH_TOKEN"


@dataclass(frozen=True)
class Parallel:
    """Where jobs run: ``workers`` at once on this machine (None: one per CUDA device, at least one; more than
    one: a local Ray instance), or on the Ray ``cluster`` (checked, joined by the orchestrator)."""

    workers: int | None = None
    cluster: ClusterAccess | None = None

    @property
    def address(self) -> str | None:
        return self.cluster.address if self.cluster is not None else None


@dataclass(frozen=True)
class Request:
    """One ``encode`` (or ``preview``) as the preflight resolved and checked it."""

    source: Path
    output: Path
    settings: Settings  # the encode's (preview: its first column's)
    compared: tuple[Settings, ...]  # preview: one per column; encode: ``settings`` alone
    info: SourceInfo
    size: tuple[int, int]  # INPUT's frame size as VapourSynth reads it
    # What the generated script does to INPUT's frames as INPUT's ffprobe facts tell (with crop=auto: before
    # the script found the borders); None: the user's script
    geometry: Geometry | None
    tools: Tools
    model: ModelChoice | None  # None: the user's script, without --model
    vpy: Path | None  # the user's script; None: the generated one
    # What every render process of the encode evaluates: the user's script, or the generated one under its hidden
    # name beside OUTPUT, which the orchestrator writes (preview writes one per column and takes only its args).
    script: ScriptSpec
    script_text: str  # what the script says (part of what a resume must match)
    start: int = 0  # the range in the script's frames (--start/--end count INPUT's: ``source.script_range``)
    end: int | None = None
    overwrite: bool = False
    restart: bool = False
    parallel: Parallel = Parallel()
    commands: EncodeCommands | None = None  # the encode's ffmpeg arguments (None for preview)
    at: tuple[int, ...] | None = None  # preview's --at moments

    @property
    def fps(self) -> Fraction:
        """The script's frame rate: INPUT's, changed by ivtc (4/5) or double-rate deinterlacing (2)."""
        return self.info.fps * (self.geometry.rate if self.geometry is not None else 1)
