"""Version-aware ordering of the weak versions specs carry (``1.2.0``, ``0.10.0``, ``2.0.0-rc.1``, ``1.0_5.2``).

Specs do not follow one scheme, so this is a total order that agrees with Semantic Versioning where a
version is SemVer-like, and stays deterministic where it is not:

- release numbers compare numerically, missing parts count as 0 (``0.10.0`` > ``0.9.0``, ``1.0`` == ``1.0.0``);
- a pre-release (``-rc.1``, ``rc1``, ``-beta``, ``.dev2``) comes before its release;
- a ``_`` suffix, which Flywheel gears use for the version of the tool they wrap (``0.2.1_0.6.0``),
  comes after its release;
- ``+build`` metadata does not change precedence;
- text that starts with no number sorts before every numbered version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_VERSION = re.compile(r"[vV]?(?P<release>\d+(?:\.\d+)*)(?P<rest>[^+]*)(?:\+.*)?")
_IDENTIFIER = re.compile(r"\d+|[A-Za-z]+")

_PRE_RELEASE, _RELEASE, _POST_RELEASE = 0, 1, 2

Identifier = tuple[int, int | str]
SortKey = tuple


def version_key(text: str) -> SortKey:
    """A key for sorted(): a lower key is an older version. Equal precedence ties on the text itself."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        return (0, (), _RELEASE, (), text)
    release = _trimmed(tuple(int(part) for part in match["release"].split(".")))
    rest = match["rest"]
    if not rest:
        return (1, release, _RELEASE, (), text)
    phase = _POST_RELEASE if rest.startswith("_") else _PRE_RELEASE
    return (1, release, phase, _identifiers(rest), text)


def newest_first(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=version_key, reverse=True)


def _trimmed(release: tuple[int, ...]) -> tuple[int, ...]:
    """``1.0.0`` and ``1`` are the same release."""
    end = len(release)
    while end > 1 and release[end - 1] == 0:
        end -= 1
    return release[:end]


def _identifiers(rest: str) -> tuple[Identifier, ...]:
    # SemVer: numeric identifiers compare numerically and before alphanumeric ones.
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in _IDENTIFIER.findall(rest))
