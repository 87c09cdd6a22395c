"""Reading JSON strictly, and where each value starts (by JSON pointer) so problems can name a line and column.

Python's `json` accepts what RFC 8259 does not (NaN, Infinity, lone surrogates), keeps the last of
duplicate keys without a word, recurses once per nesting level (RecursionError on deep input) and
raises a bare ValueError for integers longer than Python converts. None of that may reach a reader of
specs. So `read_json` walks the text once, without recursion, checking those rules and recording
positions, and only then lets `json.loads` build the data. Every JSON file a spec reader opens goes
through here, so `validate`, `process` and the catalog never disagree about what a file says.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # typeshed omits it; CPython has it
from typing import Any

from .json_syntax import explain
from .quoting import short_text

# Specs are a handful of levels deep; this bound keeps every recursive reader after us (jsonschema,
# deepcopy, json.dumps) far from Python's recursion limit.
MAX_DEPTH = 100
# Python refuses to convert longer integers (sys.get_int_max_str_digits, 4300 by default).
MAX_NUMBER_LENGTH = 4300

SYNTAX_RULE = "json-syntax"
DUPLICATE_KEY_RULE = "json-duplicate-key"

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERAL = re.compile(r"true|false|null")
_NON_FINITE = re.compile(r"-?Infinity|NaN")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CLOSING = {"{": "}", "[": "]"}


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True)
class JsonProblem:
    """Why a JSON text cannot be read, at the place it goes wrong."""

    rule: str  # SYNTAX_RULE or DUPLICATE_KEY_RULE
    message: str
    position: Position


@dataclass
class JsonText:
    """A JSON file's text and data; `data` is None when `problems` says why it cannot be read."""

    text: str
    data: Any = None
    problems: list[JsonProblem] = field(default_factory=list)
    index: PositionIndex | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def readable(self) -> bool:
        """The data could be read (only duplicate keys, if anything, were found: the last value counts,
        as Python's json reader has it; `problems` still names each)."""
        return self.data is not None or self.text.strip() == "null"

    def position(self, pointer: str) -> Position:
        if self.index is None:
            return Position(1, 1)
        return self.index.position(pointer)


def read_json(raw: bytes) -> JsonText:
    """Decode UTF-8 strictly, check the text, then parse it. Never raises for any input."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return JsonText("", problems=[JsonProblem(SYNTAX_RULE, f"not UTF-8 text: {_byte_problem(raw, error)}",
                                                  _byte_position(raw, error.start))])
    return parse_json(text)


def parse_json(text: str) -> JsonText:
    walk = _Walk(text)
    walk.run()
    index = PositionIndex(text, walk.offsets)
    document = JsonText(text, index=index)
    if walk.problems:
        document.problems = [JsonProblem(rule, message, index.position_of_offset(offset))
                             for rule, message, offset in walk.problems]
        if any(rule != DUPLICATE_KEY_RULE for rule, _, _ in walk.problems):
            return document
    try:
        document.data = json.loads(text)
    except json.JSONDecodeError as error:
        message, offset = explain(error)
        document.problems = [JsonProblem(SYNTAX_RULE, f"not valid JSON: {message}", index.position_of_offset(offset))]
        document.data = None
    return document


class NotStrictJson(ValueError):
    """A document from outside that `strict_data` will not read: over its size cap (`syntax` False), or not
    strict JSON (`syntax` True; the message starts with ``line L, column C:``)."""

    def __init__(self, message: str, *, syntax: bool, position: Position | None = None) -> None:
        super().__init__(message)
        self.syntax = syntax
        self.position = position  # where, for a document whose text must not be quoted (it holds secrets)


def strict_data(raw: bytes, *, limit: int | None = None) -> Any:
    """The one reader of JSON documents from outside (a manifest, an envelope, a statement, a lease, a shard
    or ownership record, a registry's answer, a Docker config): at most `limit` bytes, read as specs are (no
    NaN, no duplicate key, at most MAX_DEPTH levels, no giant integer, never a RecursionError), else
    NotStrictJson saying where."""
    if limit is not None and len(raw) > limit:
        raise NotStrictJson(f"{len(raw):,} bytes, more than the {limit:,} it may hold", syntax=False)
    document = read_json(raw)
    if not document.ok:
        problem = document.problems[0]
        raise NotStrictJson(f"line {problem.position.line}, column {problem.position.column}: {problem.message}",
                            syntax=True, position=problem.position)
    return document.data


def strict_document(raw: bytes, shown: str, error: Callable[[str], Exception], *, limit: int | None = None) -> Any:
    """`strict_data`, its refusal raised as `error` on one line: ``<shown>: not JSON (line L, column C: …)``."""
    try:
        return strict_data(raw, limit=limit)
    except NotStrictJson as refused:
        raise error(f"{shown}: not JSON ({refused})" if refused.syntax else f"{shown}: {refused}") from None


def first_problem_line(shown: str, document: JsonText) -> str:
    """``file:line:col: message [rule]`` for a JSON file read on its own, outside a validation report."""
    problem = document.problems[0]
    return f"{shown}:{problem.position.line}:{problem.position.column}: {problem.message} [{problem.rule}]"


def pointer_from_path(path: Iterable[object]) -> str:
    """RFC 6901 pointer for a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class PositionIndex:
    """Maps JSON pointers of a JSON text to 1-based line and column."""

    def __init__(self, text: str, offsets: dict[str, int]) -> None:
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._offsets = offsets

    def position(self, pointer: str) -> Position:
        """The position of the value at `pointer`, or of its nearest existing ancestor."""
        while pointer not in self._offsets and pointer:
            pointer = pointer.rsplit("/", 1)[0]
        return self.position_of_offset(self._offsets.get(pointer, 0))

    def position_of_offset(self, offset: int) -> Position:
        line = bisect.bisect_right(self._line_starts, offset)
        return Position(line, offset - self._line_starts[line - 1] + 1)


@dataclass
class _Container:
    opening: str  # "{" or "["
    pointer: str
    keys: dict[str, int] = field(default_factory=dict)  # key -> offset of its first occurrence
    items: int = 0
    entered: bool = True  # nothing read inside it yet: no comma before the first member


class _Stop(Exception):
    """The text is not JSON here; json.loads will say how, or a limit was passed."""


class _Walk:
    """One pass over the text with an explicit stack: offsets of every value and the problems found.

    It stops quietly at the first syntax error (json.loads then reports it precisely) and at the depth
    limit; the other problems are recorded and the walk goes on, so each one is reported.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.offsets: dict[str, int] = {}
        self.problems: list[tuple[str, str, int]] = []
        self._stack: list[_Container] = []

    def run(self) -> None:
        try:
            index, pointer = _skip(self.text, 0), ""
            while True:
                index = self._value(index, pointer)
                next_value = self._after_value(index)
                if next_value is None:
                    return
                index, pointer = next_value
        except _Stop:
            return

    def _value(self, index: int, pointer: str) -> int:
        """Read the value starting at `index`; a container is entered, not finished."""
        self.offsets.setdefault(pointer, index)
        text = self.text
        char = text[index:index + 1]
        if char in _CLOSING:
            if len(self._stack) >= MAX_DEPTH:
                self.problems.append((SYNTAX_RULE, f"nested more than {MAX_DEPTH} levels deep", index))
                raise _Stop
            self._stack.append(_Container(char, pointer))
            return index + 1
        if char == '"':
            return self._decode_string(index)[1]
        number = _NUMBER.match(text, index)
        if number:
            self._check_number(number.group(), index)
            return number.end()
        literal = _LITERAL.match(text, index) or _NON_FINITE.match(text, index)
        if literal is None:
            raise _Stop
        if _NON_FINITE.fullmatch(literal.group()):
            self.problems.append((SYNTAX_RULE, (f"{literal.group()} is not a JSON value (RFC 8259 has no "
                                                "NaN or Infinity)"), index))
        return literal.end()

    def _after_value(self, index: int) -> tuple[int, str] | None:
        """Past the value just read: where the next value starts and its pointer; None at the end."""
        text = self.text
        while True:
            index = _skip(text, index)
            if not self._stack:
                return None
            top = self._stack[-1]
            char = text[index:index + 1]
            if char == _CLOSING[top.opening]:
                self._stack.pop()
                index += 1
                continue
            if top.entered:
                top.entered = False
            elif char == ",":
                index = _skip(text, index + 1)
            else:
                raise _Stop
            if top.opening == "[":
                top.items += 1
                return index, f"{top.pointer}/{top.items - 1}"
            return self._member(index, top)

    def _member(self, index: int, top: _Container) -> tuple[int, str]:
        text = self.text
        if text[index:index + 1] != '"':
            raise _Stop
        key_start = index
        key, index = self._decode_string(index)
        if key in top.keys:
            first = self._place(top.keys[key])
            self.problems.append((DUPLICATE_KEY_RULE, (f"duplicate key {short_text(json.dumps(key))} (first at {first}); "
                                                       "JSON readers disagree on which value counts"), key_start))
        else:
            top.keys[key] = key_start
        index = _skip(text, index)
        if text[index:index + 1] != ":":
            raise _Stop
        return _skip(text, index + 1), top.pointer + pointer_from_path([key])

    def _place(self, offset: int) -> str:
        line = self.text.count("\n", 0, offset) + 1
        return f"{line}:{offset - (self.text.rfind(chr(10), 0, offset) + 1) + 1}"

    def _decode_string(self, index: int) -> tuple[str, int]:
        try:
            value, end = scanstring(self.text, index + 1)
        except json.JSONDecodeError:
            raise _Stop from None
        if _SURROGATE.search(value):
            self.problems.append((SYNTAX_RULE, ("a string holds an unpaired UTF-16 surrogate escape, "
                                                "which is no Unicode character"), index))
        return value, end

    def _check_number(self, token: str, index: int) -> None:
        limit = min(MAX_NUMBER_LENGTH, sys.get_int_max_str_digits() or MAX_NUMBER_LENGTH)
        if len(token) > limit:
            self.problems.append((SYNTAX_RULE, f"a number {len(token)} characters long; at most {limit} are read",
                                  index))
        elif any(char in token for char in ".eE") and math.isinf(float(token)):
            self.problems.append((SYNTAX_RULE, f"{token} is too large for a 64-bit float", index))


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]


def _byte_position(raw: bytes, offset: int) -> Position:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return Position(raw.count(b"\n", 0, offset) + 1, column)


def _byte_problem(raw: bytes, error: UnicodeDecodeError) -> str:
    return f"byte 0x{raw[error.start]:02x}: {error.reason}"
