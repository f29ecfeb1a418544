"""The one place preset keys are defined and validated: names, types, allowed values, defaults.

A preset is TOML with an optional ``description`` and two tables, ``[engine]`` (options of the filter) and
``[encoder]`` (x265 options). Keys a preset leaves out keep the defaults below; ``--set key=value`` (or
``--set engine.key=value``) overrides any key, parsed by the key's type. A value of None means "the filter's
or encoder's own default" and is not passed on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.settings.codecs import (
    CODECS,
    CRF_MAX,
    DEFAULT_CODEC,
    PIXEL_FORMATS,
    SVTAV1_PRESET_MAX,
    X26X_PRESETS,
    X26X_TUNES,
)
from streamdiffvsr.options import (
    AUTO_FLOW,
    DEFAULT_COMPILE,
    DEFAULT_FLOW_SCALE,
    DEFAULT_MAX_CHAIN,
    DEFAULT_NOISE,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    FLOW_CHOICES,
    FLOW_SCALE_BOUNDS,
    MAX_CHAIN_BOUNDS,
    NOISE_MODES,
    PRECISIONS,
    SCENE_THRESHOLD_BOUNDS,
    SEED_BOUNDS,
    SNAPSHOT_INTERVAL_BOUNDS,
    STEPS_BOUNDS,
    TIMESTEP_SPACINGS,
    Bounds,
)

SECTIONS = ("engine", "encoder", "segment")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_X265_PARAMS = re.compile(r"^[A-Za-z0-9-]+(=[^:=\s]+)?(:[A-Za-z0-9-]+(=[^:=\s]+)?)*$")


@dataclass(frozen=True)
class Key:
    """One preset key. ``kind`` is int, float, bool, choice, path or x265 (a ``k=v:k=v`` parameter list)."""

    section: str
    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    bounds: Bounds | None = None
    auto: bool = False  # the word "auto" is accepted and means None (the filter's/encoder's own default)

    def allowed(self) -> str:
        """The allowed values, in words (for error messages and ``presets --keys``)."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "path":
            text = "a file path"
        elif self.kind == "x265":
            text = "x265 parameters as key=value:key=value (e.g. aq-mode=3:no-sao=1)"
        else:
            noun = "an integer" if self.kind == "int" else "a number"
            b = self.bounds
            if b is None:
                text = noun
            elif b.high is None:
                text = f"{noun} {'>' if b.low_open else '>='} {_num(b.low)}"
            elif b.low_open:
                text = f"{noun} above {_num(b.low)}, up to {_num(b.high)}"
            else:
                text = f"{noun} from {_num(b.low)} to {_num(b.high)}"
        return f"{text}, or auto" if self.auto else text

    def parse(self, text: str) -> Any:
        """A ``--set`` value (always a string) converted to this key's type, then checked."""
        word = text.strip()
        if self.auto and word.lower() == "auto":
            return None
        try:
            if self.kind == "int":
                value: Any = int(word)
            elif self.kind == "float":
                value = float(word)
            elif self.kind == "bool":
                if word.lower() not in _TRUE | _FALSE:
                    raise ValueError
                value = word.lower() in _TRUE
            elif self.kind == "path":
                value = text or None
            else:
                value = word
        except ValueError:
            raise self.error(text) from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Validate a typed value (from TOML or ``parse``); returns it normalised, or raises CliError."""
        if value is None or (self.auto and value == "auto"):
            return None
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise self.error(value)
        elif self.kind in ("int", "float"):
            ok_type = (int,) if self.kind == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
                raise self.error(value)
            if self.bounds is not None and value not in self.bounds:
                raise self.error(value)
            value = float(value) if self.kind == "float" else value
        elif self.kind == "choice":
            if value not in self.choices:
                raise self.error(value)
        elif self.kind == "x265":
            if not isinstance(value, str) or (value and not _X265_PARAMS.match(value)):
                raise self.error(value)
        elif not isinstance(value, str):
            raise self.error(value)
        return value

    def error(self, value: Any) -> CliError:
        return CliError(f"{self.section}.{self.name} must be {self.allowed()} (got {value!r})")


def _num(x: float) -> str:
    return f"{x:g}"


# The engine keys' choices, ranges and defaults come from streamdiffvsr.options, as the filter's checks do.
KEYS: tuple[Key, ...] = (
    Key("engine", "steps", "int", DEFAULT_STEPS, "diffusion steps per frame", bounds=STEPS_BOUNDS),
    Key("engine", "precision", "choice", None, "network precision (auto: bf16 on CUDA, fp32 on CPU)",
        choices=PRECISIONS, auto=True),
    Key("engine", "flow", "choice", AUTO_FLOW, "optical flow backend (auto: the model's own, raft_large for the official)",
        choices=FLOW_CHOICES),
    Key("engine", "flow_scale", "float", DEFAULT_FLOW_SCALE, "LR upscale factor before flow (4 = official, 1 = cheap)",
        bounds=FLOW_SCALE_BOUNDS),
    Key("engine", "flow_weights", "path", None, "RAFT state dict file (default: torchvision's weights)"),
    Key("engine", "seed", "int", DEFAULT_SEED, "seed of the per-frame initial noise", bounds=SEED_BOUNDS),
    Key("engine", "noise", "choice", DEFAULT_NOISE, "initial noise: fresh per frame, fixed per chain, or warped along the flow",
        choices=NOISE_MODES),
    Key("engine", "scene_detect", "bool", True, "restart the temporal chain at scene changes"),
    Key("engine", "scene_threshold", "float", None, "scene cut threshold (mean abs gray difference)",
        bounds=SCENE_THRESHOLD_BOUNDS, auto=True),
    Key("engine", "max_chain", "int", DEFAULT_MAX_CHAIN, "restart the temporal chain every N frames (0 = never)",
        bounds=MAX_CHAIN_BOUNDS),
    Key("engine", "snapshot_interval", "int", None, "frames between snapshots of the stream state (seeking)",
        bounds=SNAPSHOT_INTERVAL_BOUNDS, auto=True),
    Key("engine", "timestep_spacing", "choice", None, "DDIM timestep spacing (auto: the checkpoint's)",
        choices=TIMESTEP_SPACINGS, auto=True),
    Key("engine", "compile", "bool", DEFAULT_COMPILE, "torch.compile the denoising networks (slow first frames)"),
    Key("engine", "device_index", "int", None, "CUDA device index (auto: the first)", bounds=Bounds(0), auto=True),
    Key("encoder", "codec", "choice", DEFAULT_CODEC, "video codec: "
        + ", ".join(f"{c.name} ({c.description})" for c in CODECS.values()), choices=tuple(CODECS)),
    Key("encoder", "crf", "float", 20.0, "constant rate factor (lower = better, bigger; "
        + ", ".join(f"{c.name} up to {c.crf_max:g}" for c in CODECS.values() if c.crf_max) + ")",
        bounds=Bounds(0, CRF_MAX)),
    Key("encoder", "x265_preset", "choice", "medium", "x265 speed preset", choices=X26X_PRESETS),
    Key("encoder", "x264_preset", "choice", "medium", "x264 speed preset", choices=X26X_PRESETS),
    Key("encoder", "svtav1_preset", "int", None, "svtav1 speed preset (0 = slowest; auto: the encoder's)",
        bounds=Bounds(0, SVTAV1_PRESET_MAX), auto=True),
    Key("encoder", "tune", "choice", None, "x265/x264 tune (auto: none)", choices=X26X_TUNES, auto=True),
    Key("encoder", "pix_fmt", "choice", "yuv420p10le", "output pixel format", choices=tuple(PIXEL_FORMATS)),
    Key("encoder", "x265_params", "x265", "", "extra x265 parameters, key=value:key=value"),
    Key("segment", "min_frames", "int", 1000, "shortest segment of a split encode (segments start at chain "
        "anchors: scene cuts and max_chain restarts)", bounds=Bounds(1)),
    Key("segment", "threads", "int", None, "CPU threads of the networks in every render process (the same "
        "everywhere, so segments equal the linear encode bit for bit; auto: this machine's cores)",
        bounds=Bounds(1), auto=True),
)  # fmt: skip
# Former key names, still accepted in presets and --set.
ALIASES = {"checkpoint_interval": "snapshot_interval"}
KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}


def find_key(name: str) -> Key:
    """A key by bare name (``steps``) or dotted name (``engine.steps``)."""
    section, _, bare = name.rpartition(".")
    key = KEYS_BY_NAME.get(ALIASES.get(bare, bare))
    if key is None or (section and section != key.section):
        raise CliError(f"unknown key {name!r}; known keys: {', '.join(k.name for k in KEYS)}")
    return key


@dataclass(frozen=True)
class Settings:
    """Validated values of every key, plus where they came from (for the generated script's header)."""

    source: str
    values: Mapping[str, Any]
    overrides: tuple[str, ...] = field(default=())
    notices: tuple[str, ...] = field(default=())  # one line each, for the user (e.g. a deprecated key)

    def section(self, name: str) -> dict[str, Any]:
        """The keys of one section that are set (not None), in schema order."""
        return {
            k.name: self.values[k.name] for k in KEYS if k.section == name and self.values[k.name] is not None
        }

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def validate_preset(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check a parsed preset file: its tables, keys and values. Returns {key: value} of what it sets."""
    values: dict[str, Any] = {}
    for top, table in data.items():
        if top == "description":
            if not isinstance(table, str):
                raise CliError(f"{source}: description must be a string")
            continue
        if top not in SECTIONS:
            raise CliError(
                f"{source}: unknown table or key {top!r}; allowed: description, "
                + ", ".join(f"[{name}]" for name in SECTIONS)
            )
        if not isinstance(table, Mapping):
            raise CliError(f"{source}: {top} must be a table ([{top}])")
        for name, value in table.items():
            key = KEYS_BY_NAME.get(ALIASES.get(name, name))
            if key is None or key.section != top:
                known = ", ".join(k.name for k in KEYS if k.section == top)
                raise CliError(f"{source}: unknown key {top}.{name}; [{top}] keys: {known}")
            try:
                values[key.name] = key.check(value)
            except CliError as exc:
                raise CliError(f"{source}: {exc}") from None
    return values


def build_settings(
    preset: Mapping[str, Any], source: str, overrides: list[str] | tuple[str, ...] = ()
) -> Settings:
    """Defaults, then the preset's values, then each ``key=value`` override in order."""
    values = {k.name: k.default for k in KEYS}
    given = validate_preset(preset, source)
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--set {item!r}: expected key=value, e.g. --set steps=2")
        key = find_key(name.strip())
        given[key.name] = key.parse(text)
    values.update(given)
    notices = _x264_preset_alias(values, given)
    if problems := CODECS[values["codec"]].problems(values):
        raise CliError(problems[0])
    return Settings(source, values, tuple(overrides), notices)


X264_ALIAS_REMOVED_IN = "0.3"


def _x264_preset_alias(values: dict[str, Any], given: Mapping[str, Any]) -> tuple[str, ...]:
    """x264 once read ``x265_preset``: a preset that sets only that one for x264 still works, with a notice."""
    if values["codec"] != "x264" or "x265_preset" not in given or "x264_preset" in given:
        return ()
    values["x264_preset"] = values["x265_preset"]
    return (
        f"encoder.x265_preset is x265's; for x264 set encoder.x264_preset (taken from x265_preset this time; "
        f"that stops working in version {X264_ALIAS_REMOVED_IN})",
    )
