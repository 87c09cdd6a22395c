"""Values from a contributor's file, quoted in a one-line message however large they are.

A spec can hold a 50 MB string or a 10,000-item array; quoting it whole (as jsonschema's messages and a
plain ``repr`` do) makes one "line" of a CI log megabytes long and buries the rule that was broken. Every
message that shows such a value quotes it with `quote`, which never builds more than a short prefix of
it and says how much was left out; `one_line` bounds a finished message as a last resort.
"""

from __future__ import annotations

import re
import reprlib
import unicodedata
from typing import Any

MESSAGE_LIMIT = 500  # characters in one problem message, quoted values included

_REPR = reprlib.Repr()
_REPR.maxstring = 200  # a string: shown whole up to this (an image reference with a digest fits), else its ends
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 6
_REPR.maxdict = 4
_REPR.maxlevel = 3
_REPR.maxother = 60
_REPR.maxlong = 60


def quote(value: Any) -> str:
    """``repr(value)`` when short, else a bounded repr followed by the value's real size."""
    shown = _REPR.repr(value)
    if isinstance(value, str) and len(value) > _REPR.maxstring:
        return f"{shown} ({len(value):,} characters)"
    if isinstance(value, (list, tuple)) and len(value) > _REPR.maxlist:
        return f"{shown} ({len(value):,} items)"
    if isinstance(value, dict) and len(value) > _REPR.maxdict:
        return f"{shown} ({len(value):,} keys)"
    return shown


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """`message` on one line and at most about `limit` characters: the middle of a longer one is left out
    (its start and end say what and which rule), and the count of characters left out is given."""
    message = " ".join(message.splitlines()) if "\n" in message or "\r" in message else message
    if len(message) <= limit:
        return message
    keep = (limit - 40) // 2
    return f"{message[:keep]}…[{len(message) - 2 * keep:,} characters left out]…{message[-keep:]}"


def short_text(text: str, limit: int = 80) -> str:
    """A name or pointer shown in a report, cut in its middle when longer than `limit`."""
    return one_line(text, limit) if len(text) > limit else text


# Characters a terminal acts on rather than shows: C0 (newline and tab included: a name must not forge a
# line or a column), DEL, C1 (0x9b is a one-byte CSI), and the format characters that reorder or hide
# text (bidi overrides and isolates, zero-width joiners, the BOM), line and paragraph separators, and
# lone surrogates. Everything else is shown as it is.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                              "\ufeff\ufff9-\ufffb\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with every character a terminal would act on written as an escape (``\\x1b``, ``\\u202e``),
    so a contributor's string is shown, never obeyed. The one escaper for text that reaches a terminal
    or a CI log."""
    if text.isascii() and text.isprintable():
        return text
    escaped = _TERMINAL_UNSAFE.sub(_escape, text)
    return "".join(c if c.isascii() or unicodedata.category(c) not in _UNSAFE_CATEGORIES else _escape_char(c)
                   for c in escaped)


def printable_lines(text: str) -> str:
    """`printable` for a message of several lines we wrote (a list of deleted objects): each line escaped,
    the line breaks kept. Contributor text inside must already be `printable` or quoted (repr)."""
    return "\n".join(printable(line) for line in text.split("\n"))


# The characters that open or close Markdown inline (CommonMark and GitHub's tables): `|` ends a table cell,
# `[`/`]` make a link (and `![` an image), `<`/`>` HTML or an autolink, `&` an entity, backticks code,
# `*`/`_`/`~` emphasis, and a backslash escapes the next. Others (`/`, `.`, `(`) are left as they are: without
# these they make nothing, and a report read raw stays readable.
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>|!&~])")


def markdown_text(text: str) -> str:
    """`text` (from an image or a spec) as literal Markdown on one line: `printable`, then each character
    that Markdown acts on backslash-escaped, so it can neither end a table cell nor make a link, HTML or code."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", printable(text))


_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _escape(match: re.Match[str]) -> str:
    return _escape_char(match.group())


def _escape_char(character: str) -> str:
    code = ord(character)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
