"""The one grammar for contributor text that becomes part of a path, an object name, a URL or a git ref.

An exchange's org folders and spec file stems name everything processed from them: manifest files
(``manifests/<org>/<org>-<stem>-sha384-<hex>.json``), bucket objects and their download URLs, catalog
pages and the tree entries of a published branch. A contributor chooses both, so both follow one
grammar, checked where a spec is located (`specs.locate`) and by every writer:

    NAME := [A-Za-z0-9_] [A-Za-z0-9._-]*     at most 100 characters, no "..", not ending in "." or ".lock"

No '/', no '%', no '@' (the version separator in manifest names), no space or control character, nothing
a URL, a shell, git or a file system reads specially. Free text (a boutique's ``name``, a label) never
becomes a path as it is: `as_name` turns any text into a NAME, keeping a NAME as it is and giving other
text a readable slug plus a hash of the text, so two different texts never share a page.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

from .errors import OutputError

MAX_NAME_LENGTH = 100
MAX_COMPONENT_LENGTH = 200  # a file name made of NAMEs and suffixes (`<name>.html`), well under 255 bytes
NAME_RULE = ("letters, digits, '.', '_' and '-', starting with a letter, a digit or '_', at most "
             f"{MAX_NAME_LENGTH} characters, no '..'")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_NOT_IN_NAME = re.compile(r"[^a-z0-9._-]+")
_HASHED_DIGITS = 10


def name_problem(text: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    """Why `text` cannot be an org or a file stem (or, with a larger `limit`, a file name); None when it can."""
    if not text:
        return "it is empty"
    if len(text) > limit:
        return f"it is {len(text)} characters long, over {limit}"
    if not _NAME.fullmatch(text):
        return f"it holds {_first_refused(text)}; use {NAME_RULE}"
    if ".." in text:
        return "it holds '..'"
    if text.endswith((".", ".lock")):
        return "it ends in '.' or '.lock'"
    return None


def is_name(text: str) -> bool:
    return name_problem(text) is None


def suggested_name(text: str) -> str:
    """A NAME close to `text` (lower case, other characters turned to '-'), for "did you mean"."""
    slug = re.sub(r"\.{2,}", ".", _NOT_IN_NAME.sub("-", text.lower())).strip("-._")[:MAX_NAME_LENGTH].rstrip("-._")
    return slug.removesuffix(".lock") or "gear"


def as_name(text: str) -> str:
    """`text` when it is a NAME; else a NAME made of its slug and a hash of the whole text."""
    if is_name(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASHED_DIGITS]
    slug = suggested_name(text)[: MAX_NAME_LENGTH - _HASHED_DIGITS - 1]
    return f"{slug}-{digest}"


class OutsideDirectory(OutputError):
    """A relative path that would leave its directory, is not made of NAME components, or passes through
    a link: nothing is written (exit 2, as for any output that cannot be written)."""


def relative_path_problem(relative: str) -> str | None:
    """Why `relative` is not a plain relative POSIX path of NAME components; None when it is one."""
    if not relative or relative.startswith("/") or "\\" in relative:
        return "it is not a relative path"
    for part in relative.split("/"):
        problem = name_problem(part, MAX_COMPONENT_LENGTH)
        if problem is not None:
            return f"its component {_shown(part)}: {problem}"
    return None


def path_below(directory: Path, relative: str) -> Path:
    """`directory / relative`, after checking that every component is a NAME and that no existing
    component is a symbolic link (a link planted in an output directory would carry a write elsewhere)."""
    problem = relative_path_problem(relative)
    if problem is not None:
        raise OutsideDirectory(f"{_shown(relative)} cannot be written below {directory}: {problem}")
    path = directory
    for part in PurePosixPath(relative).parts:
        path = path / part
        if path.is_symlink():
            raise OutsideDirectory(f"{path} is a symbolic link; nothing is written through a link")
    return path


def _first_refused(text: str) -> str:
    if not text[0].isascii() or not (text[0].isalnum() or text[0] == "_"):
        return f"{_shown(text[0])} at its start"
    bad = next(character for character in text if not (character.isascii() and (character.isalnum() or
                                                                                 character in "._-")))
    return _shown(bad)


def _shown(text: str) -> str:
    # ascii(): a control character or a bidi override in a name is shown as an escape, never sent raw.
    return ascii(text)
