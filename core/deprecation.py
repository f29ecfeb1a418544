"""Former spellings that still work for a while. Each is made by one ``deprecate(name, version)`` call, with
literal arguments, which gives the user's notice; ``tests/test_deprecations.py`` finds every call in the source
and fails once the package's version reaches a removal version, so an old spelling is removed, not forgotten.
No torch (the command line reads presets with it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"\d+(\.\d+)*")


@dataclass(frozen=True)
class Deprecation:
    """``name``, a former spelling, still accepted with a notice until ``version``, the first without it."""

    name: str
    version: str

    def notice(self, now: str, section: str = "") -> str:
        """The one notice text: ``name`` is now ``now``, and when the old name stops working (both names with
        ``section.`` before them where the user writes them so, e.g. ``engine.`` in a preset)."""
        prefix = f"{section}." if section else ""
        return (
            f"{prefix}{self.name} is now {prefix}{now}; the old name stops working in version {self.version}"
        )

    def due(self, package_version: str) -> bool:
        """Whether a package of ``package_version`` must no longer accept the old name."""
        return _numbers(package_version) >= _numbers(self.version)


def deprecate(name: str, version: str) -> Deprecation:
    """``name`` goes away in ``version`` (dotted numbers, e.g. "0.3"). The one way to make a Deprecation: the
    removal test finds each call by its name."""
    if not _VERSION.fullmatch(version):
        raise ValueError(f"deprecate({name!r}, {version!r}): the version must be dotted numbers, e.g. '0.3'")
    return Deprecation(name, version)


def _numbers(version: str) -> tuple[int, ...]:
    """A version's leading dotted numbers, trailing zeros dropped ("0.3" == "0.3.0"; "0.3.dev1" is 0.3)."""
    parts = [int(part) for part in re.match(r"[\d.]*", version)[0].strip(".").split(".") if part]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
