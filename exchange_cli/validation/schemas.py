"""Schema and semantic checks, with the schemas the field's own libraries ship.

Gears: the Flywheel gear manifest schema from `flywheel-gears`. That package validates without a
format checker, which silently accepts any string as a URI; we compile it once with one, so
``source`` and ``url`` are really checked. Boutiques: the descriptor schema and the semantic checks of
the `boutiques` package, its ``required`` list untouched.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Iterator

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match

from ..jsonpos import pointer_from_path
from .problems import Problem


@cache
def gear_validator() -> Draft4Validator:
    from gears import generator

    schema = generator.get_master_schema()
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


@cache
def boutique_schema() -> dict[str, Any]:
    import boutiques

    path = Path(boutiques.__file__).parent / "schema" / "descriptor.schema.json"
    return json.loads(path.read_text())


@cache
def boutique_validator() -> Draft4Validator:
    return Draft4Validator(boutique_schema(), format_checker=Draft4Validator.FORMAT_CHECKER)


def schema_problems(validator: Draft4Validator, data: Any, rule: str) -> list[Problem]:
    return [_problem(error, rule) for error in sorted(validator.iter_errors(data), key=_error_order)]


def _error_order(error: ValidationError) -> tuple[str, str]:
    return pointer_from_path(error.absolute_path), error.message


def _problem(error: ValidationError, rule: str) -> Problem:
    # anyOf/oneOf failures say only "not valid under any of the given schemas"; the best matching
    # sub-error names the property and the constraint actually broken.
    specific = best_match(error.context) if error.context else None
    chosen = specific if specific is not None and len(specific.absolute_path) >= len(error.absolute_path) else error
    message = _enum_message(chosen) or chosen.message
    if chosen is not error:
        message = f"{error.message}: {chosen.message}"
    return Problem(rule, _shorten(message), pointer_from_path(chosen.absolute_path))


def _enum_message(error: ValidationError) -> str | None:
    """Long enums (the license list has 100 entries) would bury the one value that matters."""
    if error.validator != "enum" or len(error.validator_value) <= 8:
        return None
    examples = ", ".join(repr(v) for v in list(error.validator_value)[:5])
    return f"{error.instance!r} is not one of the {len(error.validator_value)} allowed values ({examples}, …)"


def _shorten(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def gear_problems(data: Any) -> list[Problem]:
    return schema_problems(gear_validator(), data, "gear-schema")


def boutique_problems(data: Any) -> list[Problem]:
    problems = schema_problems(boutique_validator(), data, "boutique-schema")
    if problems:
        return problems  # the semantic checks assume a descriptor that fits the schema
    return list(boutique_semantic_problems(data))


_QUOTED = re.compile(r'"([^"]+)"')


def boutique_semantic_problems(data: dict[str, Any]) -> Iterator[Problem]:
    from boutiques.validator import DescriptorValidationError, validate_descriptor

    try:
        validate_descriptor(copy.deepcopy(data))  # it fills in defaults in place
    except DescriptorValidationError as error:
        for line in str(error).splitlines():
            message = line.strip().removeprefix("[ ERROR ]").strip()
            if message:
                yield Problem("boutique-semantics", message, _semantic_pointer(data, message))


def _semantic_pointer(data: dict[str, Any], message: str) -> str:
    """Boutiques reports ids and value-keys by name only; point at the item that carries one."""
    for token in _QUOTED.findall(message):
        for section in ("inputs", "output-files", "groups"):
            for index, item in enumerate(data.get(section) or []):
                for field in ("id", "value-key"):
                    if isinstance(item, dict) and item.get(field) == token:
                        return f"/{section}/{index}/{field}"
    return ""
