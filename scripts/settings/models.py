"""Which checkpoint a run uses: the one asked for, else the official weights if cached, else the embedded one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The embedded offline default: a small checkpoint of the official architecture trained on a CPU (a preview).
EMBEDDED_MODEL = "nano"
# What each embedded model is, for the one-line notice.
EMBEDDED_NOTES = {
    "nano": "a small CPU-trained preview model, not the official weights",
    "tiny": "random weights: a pipeline check, not an upscale",
}


@dataclass(frozen=True)
class ModelChoice:
    """A resolved checkpoint: the name the user sees, its local folder, and the one-line notice to print."""

    name: str
    path: Path
    notice: str


def choose_model(requested: str | None) -> ModelChoice:
    """Resolve ``requested`` (download allowed), or pick the default; StreamDiffVSRError says what is wrong."""
    from streamdiffvsr.errors import ModelLoadError
    from streamdiffvsr.locate import resolve_checkpoint
    from streamdiffvsr.options import DEFAULT_MODEL

    if requested:
        path = resolve_checkpoint(requested)
        note = f" ({EMBEDDED_NOTES[requested]})" if requested in EMBEDDED_NOTES else ""
        return ModelChoice(requested, path, f"model: {requested}{note}")
    try:
        path = resolve_checkpoint(DEFAULT_MODEL, download=False)
    except ModelLoadError:
        path = resolve_checkpoint(EMBEDDED_MODEL)
        return ModelChoice(
            EMBEDDED_MODEL,
            path,
            f"model: embedded {EMBEDDED_MODEL!r} ({EMBEDDED_NOTES[EMBEDDED_MODEL]}); "
            f"{DEFAULT_MODEL} is not cached, run `streamdiffvsr download` to use it",
        )
    return ModelChoice(DEFAULT_MODEL, path, f"model: {DEFAULT_MODEL} (cached at {path})")


def model_reference(name: str) -> str:
    """A ``--model`` value as given: an embedded name or a hub id (owner/name) unchanged, a folder made absolute."""
    from streamdiffvsr.cli.arguments import absolute_path

    if name in EMBEDDED_NOTES:
        return name
    hub_id = name.count("/") == 1 and not name.startswith((".", "~", "/"))
    return name if hub_id and not absolute_path(name).is_dir() else str(absolute_path(name))


def steps_notice(steps: int, choice: ModelChoice) -> str | None:
    """A line when ``steps`` is not the step count the model was trained for (``checkpoint.trained_steps``):
    a diffusion model run for other steps than it learnt can give noise (nano: pure noise at 1 step)."""
    from streamdiffvsr.locate import trained_steps

    trained = trained_steps(choice.path)
    if trained is None or steps == trained:
        return None
    return (
        f"engine.steps is {steps}, but model {choice.name} was trained for {trained} steps per frame: its "
        f"output may be noise (nano gives pure noise at 1 step, heavy noise at 2); --set engine.steps={trained} "
        "runs it as trained"
    )


def add_model_argument(parser) -> None:
    """The --model option of the commands that run the model."""
    parser.add_argument(
        "--model",
        type=model_reference,
        help="checkpoint: hub id, local folder or embedded name (default: official if cached)",
    )
