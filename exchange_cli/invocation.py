"""Invocation schemas: what a job's inputs and config must look like to run a spec.

Derived with the field's own generators (`flywheel-gears` for gears, `boutiques` for descriptors), or
read from a strongly-versioned manifest, which embeds the schema it was published with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft4Validator, SchemaError, ValidationError

from .confined import NotConfined, read_small_file
from .errors import ExchangeError
from .jsonpos import first_problem_line, read_json
from .manifests import MAX_MANIFEST_BYTES, embedded_spec
from .specs import SpecKind, kind_of
from .validation.problems import Problem
from .validation.schemas import schema_message, schema_problems


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
        document = read_json(read_small_file(path, limit=MAX_MANIFEST_BYTES))
    except NotConfined as error:  # TooLarge too
        raise InvocationSchemaError(f"{path} {error.reason}; a spec or a manifest is a regular file of at most "
                                    f"{MAX_MANIFEST_BYTES:,} bytes") from None
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


@dataclass(frozen=True)
class ChosenSchema:
    schema: dict[str, Any]
    stale: str | None = None  # why a manifest's embedded schema is older than today's generator
    regenerated: bool = False


def choose_invocation_schema(document: SpecDocument, *, regenerate: bool = False) -> ChosenSchema:
    """A manifest's embedded schema (what it was published with) unless `regenerate`; either way, say
    when it is older than the schema its embedded spec gives today, so the two never disagree silently."""
    if document.embedded_schema is None:
        return ChosenSchema(derive_invocation_schema(document.spec, document.kind, origin=str(document.path)))
    if regenerate:
        today = derive_invocation_schema(document.spec, document.kind, origin=str(document.path))
        return ChosenSchema(today, stale_reason(document.embedded_schema, today), regenerated=True)
    try:
        today = derive_invocation_schema(document.spec, document.kind, origin=str(document.path))
    except InvocationSchemaError as error:  # only the comparison needs it: check against what was published
        return ChosenSchema(document.embedded_schema, f"today's schema cannot be derived to compare ({error})")
    return ChosenSchema(document.embedded_schema, stale_reason(document.embedded_schema, today))


def stale_reason(embedded: Any, today: dict[str, Any]) -> str | None:
    if embedded == today:
        return None
    if isinstance(embedded, dict) and "WARNING" in embedded and "properties" not in embedded:
        return "its embedded invocation schema is the old placeholder ({\"WARNING\": …}), which accepts anything"
    if isinstance(embedded, dict) and _closed(today) and not _closed(embedded):
        return "its embedded invocation schema is older than today's generator: it lacks additionalProperties: false"
    return "its embedded invocation schema differs from the one its spec gives today"


def _closed(schema: dict[str, Any]) -> bool:
    """Whether a schema, or one of its top-level properties' schemas, refuses unknown properties."""
    values = [schema] + [v for v in (schema.get("properties") or {}).values() if isinstance(v, dict)]
    return any(v.get("additionalProperties") is False for v in values)


# What Boutiques' generator calls a descriptor without a name (old descriptors, as the old pipeline
# embedded them): it builds the schema's title from the name, and nothing else depends on it.
UNNAMED_DESCRIPTOR = "unnamed-descriptor"


def derive_invocation_schema(spec: dict[str, Any], kind: SpecKind, *, origin: str = "spec") -> dict[str, Any]:
    try:
        if kind is SpecKind.GEAR:
            from gears.generator import derive_invocation_schema as derive_gear

            derived: dict[str, Any] = derive_gear(spec)
            return derived
        from boutiques.invocationSchemaHandler import generateInvocationSchema

        if not isinstance(spec.get("name"), str):
            spec = {**spec, "name": UNNAMED_DESCRIPTOR}
        generated: dict[str, Any] = generateInvocationSchema(spec)
        return generated
    except (ValidationError, SchemaError) as error:
        # A SchemaError carries the same message, path and validator as a ValidationError.
        message = schema_message(cast(ValidationError, error))
        raise InvocationSchemaError(f"{origin}: not a valid {kind.value}, so no invocation schema: {message} "
                                    "(run `exchange validate` on it)") from None
    except (KeyError, TypeError, Exception) as error:  # noqa: BLE001 - both generators raise bare Exceptions
        raise InvocationSchemaError(f"{origin}: cannot derive an invocation schema: {error}") from None


def invocation_problems(schema: dict[str, Any], invocation: Any) -> list[Problem]:
    validator = Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
    return schema_problems(validator, invocation, "invocation")
