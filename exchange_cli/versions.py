"""The order of the weak versions specs carry, as real exchanges write them.

Specs follow no one scheme (``1.4.4``, ``0.10.0``, ``2.0.0-rc.1``, ``1.0.0_7.1.1_rc0``, ``0.2.1_0.6.0``,
``2.1.5-1``, ``v1.0``), so this is a total order that agrees with Semantic Versioning where a version is
SemVer-like and stays deterministic where it is not. A version is read as a sequence of parts:

- a *number group*: digits joined by ``.`` (``1.0.0``), compared numerically part by part, trailing
  zeros ignored (``1.0`` and ``1.0.0`` are the same release, ``0.10.0`` > ``0.9.0``);
- a *word*: a run of letters, case-insensitive;
- ``_``, ``-`` and any other punctuation only separate parts; a leading ``v`` and ``+build`` metadata
  are ignored.

Parts compare left to right; where one version has no more parts, that "end" sorts **above** the
pre-release words ``dev`` < ``alpha``/``a`` < ``beta``/``b`` < ``pre``/``preview`` < ``rc``/``c`` and
**below** any other word and any number group. So a pre-release comes before its release
(``1.0.0_7.1.1_rc0`` < ``1.0.0_7.1.1``, ``1.0.0-beta`` < ``1.0.0-rc.2`` < ``1.0.0-rc.10`` < ``1.0.0``),
and a suffix that adds a number comes after it and before the next release (``0.2.1`` <
``0.2.1_0.6.0`` < ``0.2.2``, ``2.1.5`` < ``2.1.5-1``). Text without digits sorts below every numbered
version. Versions of equal precedence (``1.0`` and ``v1.0.0``) are ordered by their text, so two
different strings never compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_PART = re.compile(r"(?P<numbers>\d+(?:\.\d+)*)|(?P<word>[A-Za-z]+)")
PRE_RELEASE_WORDS = {"dev": 0, "alpha": 1, "a": 1, "beta": 2, "b": 2, "pre": 3, "preview": 3, "rc": 4, "c": 4}

# Every part is a tuple led by its rank, so parts of different kinds always compare.
_PRE_RELEASE, _END, _WORD, _NUMBERS = 0, 1, 2, 3
_END_PART = (_END,)

SortKey = tuple[Any, ...]


def version_key(text: str) -> SortKey:
    """A key for sorted(): a lower key is an older version; only equal strings have equal keys."""
    core = text.strip()
    core = core[1:] if core[:1] in ("v", "V") and core[1:2].isdigit() else core
    core = core.split("+", 1)[0]
    return (*(_part(match) for match in _PART.finditer(core)), _END_PART, text)


def newest_first(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=version_key, reverse=True)


def _part(match: re.Match[str]) -> tuple[Any, ...]:
    if match["numbers"] is not None:
        return (_NUMBERS, _trimmed(tuple(int(number) for number in match["numbers"].split("."))))
    word = match["word"].lower()
    if word in PRE_RELEASE_WORDS:
        return (_PRE_RELEASE, PRE_RELEASE_WORDS[word], word)
    return (_WORD, word)


def _trimmed(numbers: tuple[int, ...]) -> tuple[int, ...]:
    """``1.0.0`` and ``1`` are the same release."""
    end = len(numbers)
    while end > 1 and numbers[end - 1] == 0:
        end -= 1
    return numbers[:end]
