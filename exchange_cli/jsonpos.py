"""Where each value of a JSON document starts, by JSON pointer, so problems can name a line and column.

`json` gives no positions, so this walks the text once more, only for files that have problems.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from json.decoder import scanstring
from typing import Iterable

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


@dataclass(frozen=True)
class Position:
    line: int
    column: int


def pointer_from_path(path: Iterable[object]) -> str:
    """RFC 6901 pointer for a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class PositionIndex:
    """Maps JSON pointers of a valid JSON text to 1-based line and column."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._offsets: dict[str, int] = {}
        self._walk(_skip(text, 0), "")

    def position(self, pointer: str) -> Position:
        """The position of the value at `pointer`, or of its nearest existing ancestor."""
        while pointer not in self._offsets and pointer:
            pointer = pointer.rsplit("/", 1)[0]
        return self.position_of_offset(self._offsets.get(pointer, 0))

    def position_of_offset(self, offset: int) -> Position:
        line = bisect.bisect_right(self._line_starts, offset)
        return Position(line, offset - self._line_starts[line - 1] + 1)

    def _walk(self, index: int, pointer: str) -> int:
        self._offsets[pointer] = index
        char = self._text[index : index + 1]
        if char == "{":
            return self._walk_object(index + 1, pointer)
        if char == "[":
            return self._walk_array(index + 1, pointer)
        if char == '"':
            return scanstring(self._text, index + 1)[1]
        match = _SCALAR.match(self._text, index)
        if not match:
            raise ValueError(f"unexpected character at offset {index}")
        return match.end()

    def _walk_object(self, index: int, pointer: str) -> int:
        index = _skip(self._text, index)
        if self._text[index] == "}":
            return index + 1
        while True:
            key, index = scanstring(self._text, _skip(self._text, index) + 1)
            index = _skip(self._text, _skip(self._text, index) + 1)  # past the colon
            index = _skip(self._text, self._walk(index, pointer + pointer_from_path([key])))
            if self._text[index] == "}":
                return index + 1
            index += 1  # the comma

    def _walk_array(self, index: int, pointer: str) -> int:
        index = _skip(self._text, index)
        if self._text[index] == "]":
            return index + 1
        item = 0
        while True:
            index = _skip(self._text, self._walk(_skip(self._text, index), f"{pointer}/{item}"))
            if self._text[index] == "]":
                return index + 1
            index += 1
            item += 1


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]


def decode_error_position(error: json.JSONDecodeError) -> Position:
    return Position(error.lineno, error.colno)
