"""Shared fixtures: everything offline, the tiny random checkpoint built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault(
    "STREAMDIFFVSR_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "streamdiffvsr")
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight checkpoint in the official folder layout (with a random RAFT-large state dict)."""
    from streamdiffvsr.tiny_checkpoint import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")
