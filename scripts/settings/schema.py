"""The one place preset keys are defined and validated: names, types, allowed values, defaults.

A preset is TOML with an optional ``description`` and five tables, ``[engine]`` (options of the filter),
``[encoder]`` (the video codec's options: ``settings/codecs.py``), ``[segment]``, ``[input]`` (how the source is
prepared: deinterlace, crop) and ``[output]`` (the output's size); the last two are checked by the rules of
``streamdiffvsr.geometry``. Keys a preset leaves out keep
the defaults below; ``--set key=value`` (or ``--set engine.key=value``) overrides any key, parsed by the key's
type. A value of None means "the filter's or encoder's own default" and is not passed on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.arguments import absolute_path
from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.settings.codecs import (
    CODECS,
    CRF_MAX,
    DEFAULT_CODEC,
    PARAMS_KEYS,
    PIXEL_FORMATS,
    X26X_TUNES,
    SpeedPreset,
)
from streamdiffvsr.deprecation import deprecate
from streamdiffvsr.geometry import (
    DEFAULT_CROP,
    DEFAULT_DEINTERLACE,
    DEFAULT_KERNEL,
    DEFAULT_METHOD,
    DEFAULT_SIZE,
    DEINTERLACE,
    KERNELS,
    METHODS,
    GeometryError,
    parse_crop,
    parse_size,
)
from streamdiffvsr.options import OPTIONS, RENAMED, Bounds, Option, OptionError

SECTIONS = ("engine", "encoder", "segment", "input", "output")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_PARAMS = re.compile(r"^[A-Za-z0-9-]+(=[^:=\s]+)?(:[A-Za-z0-9-]+(=[^:=\s]+)?)*$")


@dataclass(frozen=True, kw_only=True)
class Key(Option):
    """One preset key: an engine option (``streamdiffvsr.options.OPTIONS``) or an encoder, segment, input or
    output key, of the same kinds plus params (a codec's own ``k=v:k=v`` parameter list) and text (read by
    ``parser``, a rule of ``streamdiffvsr.geometry``, and kept as the text it normalises to)."""

    section: str
    parser: Callable[[str], object] | None = None
    spelled: str = ""  # a text key's allowed values, in words

    @classmethod
    def engine(cls, option: Option) -> Key:
        return cls(section="engine", **{f.name: getattr(option, f.name) for f in fields(Option)})

    def allowed(self) -> str:
        """The allowed values, in words (for error messages and ``presets --keys``)."""
        if self.kind == "params":
            codec = PARAMS_KEYS[self.name]
            return f"{codec.name} parameters as key=value:key=value (e.g. {codec.params_key.example})"
        if self.kind == "text":
            return self.spelled
        return super().allowed()

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
                value = str(absolute_path(text)) if text else None
            else:
                value = word
        except ValueError:
            raise self.error(text) from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Validate a typed value (from TOML or ``parse``); returns it normalised, or raises CliError."""
        if value is None or (self.auto and value == "auto"):
            return None
        if self.kind == "params":
            if not isinstance(value, str) or (value and not _PARAMS.match(value)):
                raise self.error(value)
            return value
        if self.kind == "text":
            if not isinstance(value, str) or self.parser is None:
                raise self.error(value)
            try:
                return str(self.parser(value))
            except GeometryError as exc:  # its message starts with the key's bare name
                raise CliError(f"{self.section}.{exc}") from None
        try:
            return super().check(value)
        except OptionError:
            raise self.error(value) from None

    def error(self, value: Any) -> CliError:
        return CliError(f"{self.section}.{self.name} must be {self.allowed()} (got {value!r})")


def _key(section: str, name: str, kind: str, default: Any, help: str, **rules: Any) -> Key:
    return Key(name, kind, default, help, section=section, **rules)


def _speed_key(codec: str, speed: SpeedPreset) -> Key:
    if speed.choices:
        return _key(
            "encoder", speed.key, "choice", speed.default, f"{codec} speed preset", choices=speed.choices
        )
    return _key("encoder", speed.key, "int", None, f"{codec} speed preset (0 = slowest; auto: the encoder's)",
                bounds=Bounds(0, speed.slowest_last), auto=True)  # fmt: skip


# The engine keys are streamdiffvsr.options.OPTIONS, as the filter's and the engine's checks are.
KEYS: tuple[Key, ...] = (
    *(Key.engine(option) for option in OPTIONS),
    _key("encoder", "codec", "choice", DEFAULT_CODEC, "video codec: "
        + ", ".join(f"{c.name} ({c.description})" for c in CODECS.values()), choices=tuple(CODECS)),
    _key("encoder", "crf", "float", 20.0, "constant rate factor (lower = better, bigger; "
        + ", ".join(f"{c.name} up to {c.crf_max:g}" for c in CODECS.values() if c.crf_max) + ")",
        bounds=Bounds(0, CRF_MAX)),
    *(_speed_key(codec.name, codec.speed) for codec in CODECS.values() if codec.speed),
    _key("encoder", "tune", "choice", None, "/".join(c.name for c in CODECS.values() if c.tunes)
        + " tune (auto: none)", choices=X26X_TUNES, auto=True),
    _key("encoder", "pix_fmt", "choice", "yuv420p10le", "output pixel format", choices=tuple(PIXEL_FORMATS)),
    *(_key("encoder", key, "params", "", f"extra {codec.name} parameters, key=value:key=value")
      for key, codec in PARAMS_KEYS.items()),
    _key("segment", "min_frames", "int", 1000, "shortest segment of a split encode (segments start at chain "
        "anchors: scene cuts and max_chain restarts)", bounds=Bounds(1)),
    _key("segment", "max_attempts", "int", 3, "tries of a segment whose worker failed in a way another try can "
        "mend (a killed worker, a lost node) before the encode stops", bounds=Bounds(1)),
    _key("segment", "threads", "int", None, "CPU threads of the networks in every render process (the same "
        "everywhere, so segments render the linear encode's frames bit for bit; auto: this machine's cores)",
        bounds=Bounds(1), auto=True),
    _key("input", "deinterlace", "choice", DEFAULT_DEINTERLACE, "deinterlacing: auto (bwdif when INPUT's field "
        "order says interlaced), off, bwdif (same rate), bwdif-double (double rate), ivtc (telecined film: "
        "29.97 -> 23.976)", choices=DEINTERLACE),
    _key("input", "crop", "text", DEFAULT_CROP, "pixels taken off the sides before the model: none, auto "
        "(constant black borders, detected on frames sampled over the whole video) or left,top,right,bottom",
        parser=parse_crop, spelled="none, auto, or left,top,right,bottom pixels (e.g. 0,140,0,140)"),
    _key("output", "size", "text", DEFAULT_SIZE, "the output's size: the model's 4x, a smaller factor, a height "
        "(width from the display aspect ratio) or width x height", parser=parse_size,
        spelled="a factor from 1x to 4x (2x, 1.5x), a height (2160p) or WxH (3840x2160)"),
    _key("output", "kernel", "choice", DEFAULT_KERNEL, "resampler of the final resize (and of the shrink of "
        "method=before)", choices=KERNELS),
    _key("output", "method", "choice", DEFAULT_METHOD, "below 4x: after = the model runs on the whole frame, "
        "then a resize (quality first); before = the frame is shrunk to a quarter of the target first (faster)",
        choices=METHODS),
)  # fmt: skip
# Former key names, still accepted in presets and --set (with a notice until the version named).
ALIASES = {old: new for old, (new, _) in RENAMED.items()}
KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}


def find_key(name: str) -> Key:
    """A key by bare name (``steps``) or dotted name (``engine.steps``)."""
    section, _, bare = name.rpartition(".")
    key = KEYS_BY_NAME.get(ALIASES.get(bare, bare))
    if key is None or (section and section != key.section):
        names = [f"{k.section}.{k.name}" for k in KEYS]
        close = difflib.get_close_matches(bare, KEYS_BY_NAME, n=1)
        hint = f"did you mean {KEYS_BY_NAME[close[0]].section}.{close[0]}? " if close else ""
        raise CliError(f"unknown key {name!r}; {hint}known keys: {', '.join(names)}")
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
    preset: Mapping[str, Any],
    source: str,
    overrides: list[str] | tuple[str, ...] = (),
    folder: Path | None = None,
) -> Settings:
    """Defaults, then the preset's values, then each ``key=value`` override in order. A relative path in the
    preset is taken from ``folder`` (the preset file's), one in an override from the working directory."""
    values = {k.name: k.default for k in KEYS}
    given = validate_preset(preset, source)
    for name, value in given.items():
        if KEYS_BY_NAME[name].kind == "path" and value is not None:
            given[name] = str(absolute_path(Path(folder or ".", value)))
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--set {item!r}: expected key=value, e.g. --set steps=2")
        key = find_key(name.strip())
        given[key.name] = key.parse(text)
    values.update(given)
    notices = _renamed_notices(preset, overrides) + _former_preset_key(values, given)
    if problems := CODECS[values["codec"]].problems(values):
        raise CliError(problems[0])
    return Settings(source, values, tuple(overrides), notices)


def _renamed_notices(preset: Mapping[str, Any], overrides: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A notice for each former key name (``options.RENAMED``) the preset or an override uses."""
    engine = preset.get("engine", {})
    used = {*engine, *(item.partition("=")[0].strip().rpartition(".")[2] for item in overrides)}
    return tuple(
        deprecation.notice(new, "engine") for old, (new, deprecation) in RENAMED.items() if old in used
    )


FORMER_PRESET_KEY = deprecate("x265_preset", "0.3")  # x264's Codec.former_preset_key


def _former_preset_key(values: dict[str, Any], given: Mapping[str, Any]) -> tuple[str, ...]:
    """A codec that once read another codec's speed preset key (``Codec.former_preset_key``, x264 read
    ``x265_preset``): a preset that sets only that one for it still works, with a notice."""
    codec = CODECS[values["codec"]]
    old, new = codec.former_preset_key, codec.preset_key
    if old is None or new is None or old not in given or new in given:
        return ()
    values[new] = values[old]
    return (FORMER_PRESET_KEY.notice(f"{new} for {codec.name} (taken from {old} this time)", "encoder"),)
