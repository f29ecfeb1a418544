"""``streamdiffvsr download``: fetch a model into the Hugging Face cache (plus its prompt embedding and the
RAFT flow weights), so later runs work offline."""

from __future__ import annotations

import argparse
import os

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.settings.models import model_reference
from streamdiffvsr.cli.settings.schema import KEYS_BY_NAME

FLOW_CHOICES = KEYS_BY_NAME["flow"].choices


def run_download(args: argparse.Namespace) -> int:
    from streamdiffvsr import DEFAULT_MODEL, resolve_checkpoint
    from streamdiffvsr.checkpoint import load_prompt_embeds
    from streamdiffvsr.errors import NotDownloadable
    from streamdiffvsr.flow import pretrained_raft_file
    from streamdiffvsr.locate import needs_pretrained_weights, resolve_flow

    model = args.model or DEFAULT_MODEL
    try:
        root = resolve_checkpoint(model)
    except NotDownloadable as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "HF_HUB_OFFLINE is set" if offline else "no network?"
        instead = "work with the embedded model (--model nano)"
        command = f"streamdiffvsr download {model}"
        raise CliError(offline_message(model, why, exc.cache, command, instead)) from None
    load_prompt_embeds(root)
    print(f"{model}: weights and prompt embedding ready at {root}")
    for flow, weights in dict.fromkeys(resolve_flow(root, flow) for flow in args.flow or ["raft_large"]):
        if not needs_pretrained_weights(flow, weights):
            continue
        try:
            pretrained_raft_file(flow)
        except NotDownloadable as exc:
            instead = "use DIS flow, which needs no weights (--set engine.flow=dis)"
            command = f"streamdiffvsr download {model} --flow {flow}"
            raise CliError(
                offline_message(f"{flow}'s weights", "no network?", exc.cache, command, instead)
            ) from None
        print(f"{flow}: torchvision's pretrained weights ready")
    return 0


def offline_message(what: str, why: str, cache: str, command: str, instead: str) -> str:
    """What to do where ``download`` cannot reach the network: copy the files over, or do without them."""
    return (
        f"cannot download {what} here ({why}); copy {cache} from a machine where `{command}` has run (with "
        f"network) to the same path here, or {instead}"
    )


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "download",
        help="fetch a model (default: the official one) and RAFT flow weights for offline use",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        type=model_reference,
        help="hub id or local folder (default: the official model)",
    )
    p.add_argument(
        "--flow",
        action="append",
        choices=FLOW_CHOICES,
        help="flow weights to fetch too (default: raft_large; auto: the model's own)",
    )
    p.set_defaults(func=run_download)
