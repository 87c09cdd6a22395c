"""Schema and semantic checks, with the schemas the field's own libraries ship.

Gears: the Flywheel gear manifest schema from `flywheel-gears`. That package validates without a
format checker, which silently accepts any string as a URI; we compile it once with one, so
``source`` and ``url`` are really checked. Boutiques: the descriptor schema and the semantic checks of
the `boutiques` package, its ``required`` list untouched.

jsonschema is imported by the validators and the functions reading their errors, not with this module:
a run that validates no spec (`exchange check-image`, a process with nothing to do) never loads it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..jsonpos import pointer_from_path
from ..quoting import MESSAGE_LIMIT, quote
from .problems import Problem

if TYPE_CHECKING:
    from jsonschema import Draft4Validator
    from jsonschema.exceptions import ValidationError


@cache
def gear_validator() -> Draft4Validator:
    from jsonschema import Draft4Validator

    from gears import generator

    schema = generator.get_master_schema()
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


@cache
def boutique_schema() -> dict[str, Any]:
    import boutiques

    path = Path(boutiques.__file__).parent / "schema" / "descriptor.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@cache
def boutique_validator() -> Draft4Validator:
    from jsonschema import Draft4Validator

    return Draft4Validator(boutique_schema(), format_checker=Draft4Validator.FORMAT_CHECKER)


def schema_problems(validator: Draft4Validator, data: Any, rule: str) -> list[Problem]:
    """Each schema error as a problem of `rule`; a failed format (uri, email) as `schema-format`, a rule of
    its own, which the old pipeline never checked (an adopting exchange may switch it off)."""
    return [_problem(error, rule) for error in sorted(validator.iter_errors(data), key=_error_order)]


FORMAT_RULE = "schema-format"


def _error_order(error: ValidationError) -> tuple[str, str]:
    return pointer_from_path(error.absolute_path), error.message


def _problem(error: ValidationError, rule: str) -> Problem:
    chosen = deepest_cause(error)
    if chosen.validator == "format" or (error.validator in ("anyOf", "oneOf") and _only_formats_fail(error)):
        rule = FORMAT_RULE
    return Problem(rule, _enum_message(chosen) or schema_message(chosen), pointer_from_path(chosen.absolute_path))


def _only_formats_fail(error: ValidationError) -> bool:
    """An anyOf over formats (a gear's url: a uri, or ""): the value fails only on format."""
    return bool(error.context) and all(sub.validator in ("format", "maxLength", "const", "enum")
                                       for sub in error.context) and any(sub.validator == "format"
                                                                         for sub in error.context)


def schema_message(error: ValidationError) -> str:
    """jsonschema's message, unless it quotes a large value whole (its messages embed ``repr`` of the
    instance, or of the unexpected keys): then the same message with the value quoted short, or one
    built from the keyword, the value and what the schema asked for."""
    message = error.message
    if len(message) <= MESSAGE_LIMIT:
        return message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict) \
            and isinstance(error.schema, Mapping):  # the schema holding the keyword, always an object
        extras = [key for key in error.instance if key not in (error.schema.get("properties") or {})
                  and not any(re.search(pattern, key) for pattern in error.schema.get("patternProperties") or {})]
        named = ", ".join(quote(key) for key in extras[:3]) + (f" and {len(extras) - 3} more" if len(extras) > 3 else "")
        return f"additional properties are not allowed ({named} unexpected)"
    shortened = message.replace(repr(error.instance), quote(error.instance))
    if len(shortened) <= MESSAGE_LIMIT:
        return shortened
    return f"{quote(error.instance)} breaks the schema's {error.validator!r} rule ({quote(error.validator_value)})"


def deepest_cause(error: ValidationError) -> ValidationError:
    """An anyOf/oneOf failure says only "not valid under any of the given schemas" (with a dump of the
    whole object); the real cause is in the branch meant for this instance. At each level, keep the
    errors of the branches that fit best (type and discriminating enum/const properties such as a gear
    input's ``base``), then take the deepest by jsonschema's own `relevance` (as `best_match` descends)."""
    from jsonschema.exceptions import relevance

    while error.context:
        candidates = _errors_of_fitting_branches(error) or list(error.context)
        error = min(candidates, key=relevance)
    return error


def _errors_of_fitting_branches(error: ValidationError) -> list[ValidationError]:
    branches = error.validator_value if isinstance(error.validator_value, list) else []
    fits: dict[str | int, int] = {index: _fit(branch, error.instance) for index, branch in enumerate(branches)}
    best = max(fits.values(), default=-1)
    if best <= 0:
        return []
    return [sub for sub in error.context
            if sub.relative_schema_path and fits.get(sub.relative_schema_path[0]) == best]


def _fit(branch: Any, instance: Any) -> int:
    """How well a branch fits an instance: -1 when its type or a discriminating value rules it out."""
    if not isinstance(branch, dict):
        return 0
    score = 0
    if "type" in branch:
        types = branch["type"] if isinstance(branch["type"], list) else [branch["type"]]
        if not any(_is_type(instance, t) for t in types):
            return -1
        score += 1
    properties = branch.get("properties")
    if isinstance(instance, dict) and isinstance(properties, dict):
        for name, schema in properties.items():
            if name not in instance or not isinstance(schema, dict):
                continue
            allowed = schema.get("enum", [schema["const"]] if "const" in schema else None)
            if isinstance(allowed, list):
                if instance[name] not in allowed:
                    return -1
                score += 2
    return score


def _is_type(instance: Any, type_name: Any) -> bool:
    from jsonschema import Draft4Validator

    try:
        return bool(Draft4Validator.TYPE_CHECKER.is_type(instance, type_name))
    except Exception:  # noqa: BLE001 - an unknown type name in a schema: it does not rule the branch out
        return True


def _enum_message(error: ValidationError) -> str | None:
    """Long enums (the license list has 100 SPDX ids) would bury the one value that matters: name the
    closest allowed values instead, and the catch-all `Other` when the list has one."""
    values = error.validator_value
    if error.validator != "enum" or not isinstance(values, list) or len(values) <= 8:  # a JSON schema's enum: a list
        return None
    allowed = [value for value in values if isinstance(value, str)]
    message = f"{quote(error.instance)} is not one of the {len(values)} allowed values"
    closest = closest_values(error.instance, allowed) if isinstance(error.instance, str) else []
    if closest:
        message += f"; did you mean {_either(closest)}?"
    else:
        message += f" ({', '.join(repr(v) for v in allowed[:5])}, …)."
    if "Other" in allowed:
        message += " 'Other' stands for any value not in the list."
    return message


_LONGEST_GUESSED = 200
_NOISE_WORDS = re.compile(r"\b(the|licen[cs]e|version)\b")


def closest_values(value: str, allowed: list[str], limit: int = 3) -> list[str]:
    """The allowed values nearest to `value`, compared without case, punctuation and filler words
    ('Apache License 2.0' -> Apache-2.0, 'BSD' -> BSD-2-Clause, BSD-3-Clause)."""
    def key(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "", _NOISE_WORDS.sub("", text.lower()))

    if len(value) > _LONGEST_GUESSED:  # no allowed value is that long, and difflib is quadratic
        return []
    by_key: dict[str, str] = {}
    for candidate in allowed:
        by_key.setdefault(key(candidate), candidate)
    wanted = key(value)
    if not wanted:
        return []
    if wanted in by_key:
        return [by_key[wanted]]
    extending = [candidate for found, candidate in by_key.items() if found.startswith(wanted)]
    if extending:
        return extending[:limit]
    import difflib

    return [by_key[found] for found in difflib.get_close_matches(wanted, list(by_key), n=limit, cutoff=0.6)]


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


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
