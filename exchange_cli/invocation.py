"""Invocation schemas: what a job's inputs and config must look like to run a spec.

Derived with the field's own generators (`flywheel-gears` for gears, `boutiques` for descriptors), or
read from a strongly-versioned manifest, which embeds the schema it was published with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, SchemaError, ValidationError

from .errors import ExchangeError
from .jsonpos import first_problem_line, read_json
from .manifests import embedded_spec
from .specs import SpecKind, kind_of
from .validation.problems import Problem
from .validation.schemas import schema_problems


class InvocationSchemaError(ExchangeError):
    pass


@dataclass(frozen=True)
class SpecDocument:
    path: Path
    kind: SpecKind
    spec: dict[str, Any]
    embedded_schema: dict[str, Any] | None = None


def read_spec_document(path: Path) -> SpecDocument:
    """A spec file, or a manifest (then its embedded spec and invocation schema)."""
    try:
        document = read_json(path.read_bytes())
    except OSError as error:
        raise InvocationSchemaError(f"{path}: cannot read: {error.strerror}") from None
    if not document.ok:
        raise InvocationSchemaError(first_problem_line(str(path), document)) from None
    data = document.data
    found = embedded_spec(data)
    if found is not None and "invocation-schema" in data:
        kind, spec = found
        return SpecDocument(path, kind, spec, data["invocation-schema"])
    if not isinstance(data, dict):
        raise InvocationSchemaError(f"{path}: a spec is a JSON object")
    return SpecDocument(path, kind_of(data, _repository_relative_hint(path)), data)


def _repository_relative_hint(path: Path) -> str | None:
    parts = path.resolve().parts
    for directory in ("gears", "boutiques"):
        if directory in parts[:-1]:
            return "/".join(parts[parts.index(directory):])
    return None


def invocation_schema(document: SpecDocument) -> dict[str, Any]:
    if document.embedded_schema is not None:
        return document.embedded_schema
    return derive_invocation_schema(document.spec, document.kind, origin=str(document.path))


def derive_invocation_schema(spec: dict[str, Any], kind: SpecKind, *, origin: str = "spec") -> dict[str, Any]:
    try:
        if kind is SpecKind.GEAR:
            from gears.generator import derive_invocation_schema as derive_gear

            return derive_gear(spec)
        from boutiques.invocationSchemaHandler import generateInvocationSchema

        return generateInvocationSchema(spec)
    except (ValidationError, SchemaError) as error:
        raise InvocationSchemaError(f"{origin}: not a valid {kind.value}, so no invocation schema: {error.message} "
                                    "(run `exchange validate` on it)") from None
    except (KeyError, TypeError, Exception) as error:  # noqa: BLE001 - both generators raise bare Exceptions
        raise InvocationSchemaError(f"{origin}: cannot derive an invocation schema: {error}") from None


def invocation_problems(schema: dict[str, Any], invocation: Any) -> list[Problem]:
    validator = Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
    return schema_problems(validator, invocation, "invocation")
