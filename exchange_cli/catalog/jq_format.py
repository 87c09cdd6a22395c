"""JSON written byte for byte as `jq -S` (jq 1.6) writes it, the layout of the old pipeline's exchange.json:
keys sorted at every level, two-space indentation, strings with jq's escapes (control characters and DEL
as ``\\u00XX``, everything else as UTF-8), and numbers as jq prints a double (its `jvp_dtoa_fmt`: the
shortest digits that read back the same, an exponent below 1e-4 or past 15 digits beyond the point)."""

from __future__ import annotations

import math
import sys
from typing import Any

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jq_text(value: Any) -> str:
    """`value` as `jq -S .` prints it, with its final newline."""
    lines: list[str] = []
    _write(value, 0, lines)
    return "".join(lines) + "\n"


def _write(value: Any, depth: int, out: list[str]) -> None:
    indent = "  " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{\n")
        for number, key in enumerate(sorted(value)):
            out.append(f"{indent}{jq_string(key)}: ")
            _write(value[key], depth + 1, out)
            out.append(",\n" if number < len(value) - 1 else "\n")
        out.append("  " * depth + "}")
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        out.append("[\n")
        for number, item in enumerate(value):
            out.append(indent)
            _write(item, depth + 1, out)
            out.append(",\n" if number < len(value) - 1 else "\n")
        out.append("  " * depth + "]")
    else:
        out.append(_scalar(value))


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return jq_string(value)
    return jq_number(value)


def jq_string(text: str) -> str:
    escaped = "".join(_SHORT_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
                      for c in text)
    return f'"{escaped}"'


def jq_number(value: int | float) -> str:
    """jq keeps every number as a double and prints its shortest round-trip digits."""
    number = float(value)
    if math.isnan(number):
        return "null"
    if math.isinf(number):
        number = math.copysign(sys.float_info.max, number)
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    digits, point = _shortest_digits(abs(number))
    sign = "-" if number < 0 else ""
    if point <= -4 or point > len(digits) + 15:
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        exponent = point - 1
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest_digits(number: float) -> tuple[str, int]:
    """(significant digits, position of the decimal point) of the shortest repr that reads back as `number`:
    1.5e-07 -> ("15", -6), 123.0 -> ("123", 3)."""
    text = repr(number)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    shift = int(exponent) if exponent else 0
    if whole.strip("0"):
        point = len(whole.lstrip("0")) + shift
        digits = (whole.lstrip("0") + fraction).rstrip("0")
    else:
        point = shift - (len(fraction) - len(fraction.lstrip("0")))
        digits = fraction.lstrip("0").rstrip("0")
    return digits or "0", point
