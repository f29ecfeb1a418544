"""``streamdiffvsr encode``: the preflight checks everything the user gave and makes the request, which the
orchestrator renders through the generated (or their) .vpy into the encoder."""

from __future__ import annotations

import argparse

from streamdiffvsr.cli.arguments import absolute_path, given, whole
from streamdiffvsr.cli.console import notify, printable
from streamdiffvsr.cli.preflight.build import encode_request, script_failures_explained
from streamdiffvsr.cli.progress import Progress
from streamdiffvsr.cli.segments import orchestrator
from streamdiffvsr.cli.segments.batch import is_batch, run_batch
from streamdiffvsr.cli.settings.codecs import CODECS, DEFAULT_CODEC
from streamdiffvsr.cli.settings.models import add_model_argument
from streamdiffvsr.cli.settings.presets import add_preset_arguments


def run_encode(args: argparse.Namespace) -> int:
    if is_batch(args.inputs, args.output):
        return run_batch(args, notify)
    request = encode_request(args, notify)
    with script_failures_explained(request):
        if args.dry_run:
            print(orchestrator.dry_run(request, notify), flush=True)
            return 0
        orchestrator.run(request, Progress(enabled=not args.quiet), notify)
    print(printable(f"wrote {request.output}"), flush=True)
    return 0


class _Inputs(argparse.Action):
    """The INPUTs as ``inputs``, the first also as ``input`` (the single encode's, which the preflight reads)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.inputs, namespace.input = values, values[0]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "encode",
        help="upscale a video 4x and encode it (audio, subtitles, chapters, attachments kept)",
        description="Upscale INPUT 4x with Stream-DiffVSR inside a VapourSynth script and encode it (encoder.codec: "
        f"{', '.join(CODECS)}; {DEFAULT_CODEC} by default) into OUTPUT (.mkv or .mp4), copying audio, subtitles, "
        "chapters, metadata and (.mkv) attachments from INPUT. A batch: several INPUTs, or folders of videos (their "
        "video files, by name), into the folder OUTPUT, each under INPUT's name (.mkv where INPUT's container cannot "
        "take the codec), on one pool of workers; a rerun skips the files it finished and resumes the others.",
    )
    p.add_argument("inputs", metavar="INPUT", nargs="+", type=absolute_path, action=_Inputs,
                   help="the source video (several, or a folder of videos: a batch)")  # fmt: skip
    p.add_argument("output", metavar="OUTPUT", type=absolute_path,
                   help="the result, .mkv or .mp4 (a batch: the folder the files go into)")  # fmt: skip
    add_preset_arguments(p)
    add_model_argument(p)
    p.add_argument(
        "--vpy",
        metavar="FILE",
        type=absolute_path,
        help="your own script instead of the generated one (gets --arg src=)",
    )
    p.add_argument(
        "--start",
        type=whole(0),
        metavar="N",
        help="first frame to encode: a frame number of INPUT, counted from 0 (default 0)",
    )
    p.add_argument(
        "--end", type=whole(0), metavar="N",
        help="last frame to encode, counted from 0 like --start and included (default: INPUT's last frame)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument(
        "--workers", type=whole(1), metavar="N",
        help="segments rendered at once on this machine, on a local Ray instance (default: one per CUDA device)",
    )  # fmt: skip
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        type=given("$RAY_ADDRESS or this machine"),
        help="run the segments on the Ray cluster at ADDRESS (default: $RAY_ADDRESS)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard the finished segments of an earlier run and start over",
    )
    p.add_argument(
        "--skip-refused",
        action="store_true",
        help="a batch: encode the files the checks accept and leave out the refused ones (default: nothing "
        "starts while any file is refused); the exit status is still 1",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything, print the plan (segments, workers) and the estimate block; render nothing",
    )
    p.set_defaults(func=run_encode)
