"""What a JSON syntax error found, in the words a contributor needs ("trailing comma before }").

`json` says what it expected ("Expecting property name enclosed in double quotes"); the mistakes
people make by hand (a trailing comma, single quotes, a comment, a missing comma, a bare word, a
newline inside a string, an unclosed brace) are recognised from the text around the error, and
anything else keeps json's words with what was found there.
"""

from __future__ import annotations

import json
import re

from .quoting import short_text

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_CLOSERS = {"{": "}", "[": "]"}


def explain(error: json.JSONDecodeError) -> tuple[str, int]:
    """(message, offset of the character to fix) for `error` raised on `error.doc`."""
    text, at = error.doc, error.pos
    found = text[at:at + 1]
    before = text[:at].rstrip()
    if not found:
        return f"the text ends too early: {_unclosed(text)}", at
    if found in "}]" and before.endswith(","):
        return f"trailing comma before {found}: remove the comma", len(before) - 1
    if error.msg.startswith("Extra data"):
        return f"more text after the end of the JSON value: {_shown(text, at)}", at
    if error.msg.startswith("Invalid control character"):
        return "a line break or other control character inside a string: write it as \\n, \\t, …", at
    if error.msg.startswith("Unterminated string"):
        return "a string is not closed (it starts here)", at
    if error.msg.startswith("Invalid \\escape") or error.msg.startswith("Invalid \\u"):
        return f"an invalid escape {text[at:at + 2]} in a string; a backslash is written \\\\", at
    if found == "'":
        return "a single quote: JSON strings and property names take double quotes", at
    if text.startswith(("//", "/*"), at):
        return "a comment: JSON has no comments", at
    if error.msg.startswith("Expecting ':'"):
        return f"missing : between the property name and its value {_shown(text, at)}", at
    if found == '"' and error.msg.startswith("Expecting ','"):
        return f"missing comma before {_shown(text, at)}", at
    word = _WORD.match(text, at)
    if word is not None:
        if error.msg.startswith("Expecting property name"):
            return f"property name {short_text(word.group())} needs double quotes: \"{short_text(word.group())}\"", at
        return f"{short_text(word.group())} is not a JSON value (strings take double quotes; true, false, null are lower-case)", at
    return f"{error.msg[0].lower()}{error.msg[1:]}, found {_shown(text, at)}", at


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.){0,40}"?|[A-Za-z0-9_.+-]{1,40}|\S')


def _shown(text: str, at: int) -> str:
    """The token at `at`, as it is written: a string, a word or number, or one character."""
    token = _TOKEN.match(text, at)
    return short_text(token.group()) if token else "a line break"


def _unclosed(text: str) -> str:
    """Which bracket or string is still open at the end of `text`."""
    stack: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            end = _string_end(text, index)
            if end is None:
                return "a string is not closed"
            index = end
            continue
        if char in _CLOSERS:
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
        index += 1
    if stack:
        return (f"{len(stack)} {'bracket is' if len(stack) == 1 else 'brackets are'} not closed (missing "
                f"{''.join(_CLOSERS[c] for c in reversed(stack))})")
    return "a value is missing"


def _string_end(text: str, start: int) -> int | None:
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == '"':
            return index + 1
        index += 1
    return None
