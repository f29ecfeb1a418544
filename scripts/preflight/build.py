"""The preflight: ``encode``'s and ``preview``'s parsed arguments, through every check that applies to the
command (``checks.CHECKS``, in order), into one ``Request``; nothing is written and nothing loads."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from streamdiffvsr.cli.errors import EncodeError
from streamdiffvsr.cli.media.ffmpeg_cmd import EncodeCommands
from streamdiffvsr.cli.media.vpy import generate_script
from streamdiffvsr.cli.preflight.checks import CHECKS, check_constant_size
from streamdiffvsr.cli.preflight.draft import ENCODE, PREVIEW, Draft
from streamdiffvsr.cli.preflight.request import Request
from streamdiffvsr.cli.preflight.source import encoded_info, read_size, script_range, source_trim
from streamdiffvsr.cli.segments.jobs import ScriptSpec
from streamdiffvsr.cli.segments.partials import GENERATED_SCRIPT_SUFFIX, partial_path
from streamdiffvsr.cli.segments.plan import render_threads
from streamdiffvsr.cli.settings.presets import load_settings
from streamdiffvsr.cli.settings.schema import Settings


def run_checks(draft: Draft) -> Draft:
    """Every check of ``draft.command``, in order."""
    for function, commands in CHECKS:
        if draft.command in commands:
            function(draft)
    return draft


def encode_request(args: argparse.Namespace, notify: Callable[[str], None]) -> Request:
    """``encode``'s arguments as one checked request (a CliError at the first mistake)."""
    draft = run_checks(Draft(ENCODE, args, (load_settings(args.preset, args.set),), (args.output,), notify))
    assert draft.info is not None
    rate = draft.geometry.rate if draft.geometry is not None else Fraction(1)
    start, end = script_range(args.start, args.end, rate)  # --start/--end count INPUT's frames
    commands = EncodeCommands(draft.source, encoded_info(draft.info, draft.geometry), draft.muxer,
                              draft.settings.section("encoder"), source_trim(draft.info, start, end, rate),
                              tag_colour=draft.vpy is None)  # fmt: skip
    return _request(draft, start=start, end=end, restart=args.restart, parallel=draft.parallel,
                    commands=commands)  # fmt: skip


def preview_request(
    args: argparse.Namespace,
    compared: Sequence[Settings],
    outputs: Sequence[Path],
    notify: Callable[[str], None],
) -> Request:
    """``preview``'s arguments as one checked request: ``compared`` are its columns' settings, ``outputs`` the
    files it writes."""
    draft = run_checks(Draft(PREVIEW, args, tuple(compared), tuple(outputs), notify))
    return _request(draft, at=draft.at)


def _request(draft: Draft, **specific: Any) -> Request:
    assert draft.info is not None and draft.tools is not None
    vpy = draft.vpy
    script_args = {"src": str(draft.source)}
    if draft.info.several_videos:  # the source reader's own choice could be cover art or a still picture
        script_args["track"] = str(draft.info.track)
    if draft.model is not None:
        script_args["model"] = str(draft.model.path)
    if draft.flow_weights is not None:
        script_args["flow_weights"] = draft.flow_weights
    path = vpy or partial_path(draft.output, GENERATED_SCRIPT_SUFFIX)  # hidden beside OUTPUT while it runs
    return Request(
        source=draft.source,
        output=draft.output,
        settings=draft.settings,
        compared=draft.compared,
        info=draft.info,
        size=read_size(draft.info),
        geometry=draft.geometry,
        tools=draft.tools,
        model=draft.model,
        vpy=vpy,
        script=ScriptSpec(path, script_args, render_threads(draft.settings["threads"])),
        script_text=generate_script(draft.settings) if vpy is None else vpy.read_text(errors="replace"),
        overwrite=draft.args.overwrite,
        **specific,
    )


@contextlib.contextmanager
def script_failures_explained(request: Request) -> Iterator[None]:
    """When the generated script fails, find out whether INPUT changes its frame size midway and say so
    (asked only then: finding it needs a decode of the keyframes, which a good input should not pay for)."""
    try:
        yield
    except EncodeError as exc:
        if exc.side == "script" and request.vpy is None:
            check_constant_size(request.source, request.info, request.tools.ffprobe)
        raise
