"""Every former spelling goes away in the version its ``deprecate(name, version)`` names: this fails once the
package's version (setup.py) reaches it. Each call is found in the source, so none is missed for lack of an
import; every deprecation notice comes from ``Deprecation.notice``."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamdiffvsr.deprecation import Deprecation, deprecate
from streamdiffvsr.version import __version__

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = ("core", "vsfilter", "scripts", "training", "presets")


@dataclass(frozen=True)
class Call:
    where: str
    deprecation: Deprecation


def package_version() -> str:
    """The version the package says it is (the installed metadata of an editable install lags until it is
    reinstalled)."""
    return __version__


def sources() -> list[Path]:
    return [path for folder in PACKAGE_FOLDERS for path in (ROOT / folder).rglob("*.py")]


def deprecate_calls() -> list[Call]:
    """Every ``deprecate(...)`` call in the package's source, its arguments read as the literals they must be."""
    calls = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (
                not isinstance(node, ast.Call)
                or getattr(node.func, "id", getattr(node.func, "attr", None)) != "deprecate"
            ):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            try:
                calls.append(Call(where, deprecate(*map(ast.literal_eval, node.args))))
            except (ValueError, TypeError) as exc:
                raise AssertionError(
                    f"{where}: deprecate() takes a literal name and version ({exc})"
                ) from None
    return calls


def overdue(calls: list[Call], version: str) -> list[str]:
    return [
        f"{call.where}: {call.deprecation.name!r} goes away in {call.deprecation.version}, and the package is "
        f"{version}: remove the old name, its handling and this deprecate() call"
        for call in calls
        if call.deprecation.due(version)
    ]


def test_no_former_name_outlives_its_removal_version() -> None:
    assert overdue(deprecate_calls(), package_version()) == []


def test_the_removal_check_fires_at_the_version_named() -> None:
    """The check above is live: every deprecation registered today is found, and each one is due at its version."""
    calls = deprecate_calls()
    found = {(call.deprecation.name, call.deprecation.version) for call in calls}
    assert {("checkpoint_interval", "0.3"), ("x265_preset", "0.3")} <= found
    for call in calls:
        version = call.deprecation.version
        assert (
            overdue([call], version) and overdue([call], f"{version}.0") and overdue([call], f"{version}.1")
        )
        assert not overdue([call], "0.0.1"), call


def test_due_compares_versions_by_number() -> None:
    old = deprecate("old", "0.10")
    assert (
        not old.due("0.9.9")
        and old.due("0.10")
        and old.due("0.10.0")
        and old.due("1.0")
        and old.due("0.10rc1")
    )
    with pytest.raises(ValueError, match="dotted numbers"):
        deprecate("old", "soon")


def test_every_deprecation_notice_is_the_one_text() -> None:
    """No module words its own deprecation notice: the text lives in ``Deprecation.notice`` alone."""
    own = ROOT / "core" / "deprecation.py"
    wording = [
        str(path.relative_to(ROOT))
        for path in sources()
        if path != own and "stops working" in path.read_text(encoding="utf-8")
    ]
    assert wording == []
    assert deprecate("checkpoint_interval", "0.3").notice("snapshot_interval", "engine") == (
        "engine.checkpoint_interval is now engine.snapshot_interval; the old name stops working in version 0.3"
    )
