"""Python distributions: `*.dist-info/METADATA` (wheels, pip), `*.egg-info/PKG-INFO` and `*.egg-info` files."""

from __future__ import annotations

from .fields import decode, headers
from .model import Package

# Classifiers naming a licence; the text after the last " :: " is the licence's name.
LICENSE_CLASSIFIER = "License :: "


def parse(path: str, data: bytes) -> list[Package]:
    fields = headers(decode(data))
    name, version = _first(fields, "name"), _first(fields, "version")
    if not name or not version:
        return []
    return [Package("pypi", name, version, path, _licenses(fields))]


def _licenses(fields: dict[str, list[str]]) -> tuple[str, ...]:
    """License-Expression (metadata 2.4) if given; else License when it is one short line; else the classifiers."""
    expression = _first(fields, "license-expression")
    if expression:
        return (expression,)
    license_field = _first(fields, "license")
    if license_field and len(license_field) <= 100 and license_field.upper() not in {"UNKNOWN", "NONE"}:
        return (license_field,)
    named = sorted({value.rpartition(" :: ")[2] for value in fields.get("classifier", [])
                    if value.startswith(LICENSE_CLASSIFIER) and not value.endswith(" :: OSI Approved")})
    return tuple(named)


def _first(fields: dict[str, list[str]], key: str) -> str:
    values = fields.get(key)
    return values[0] if values else ""
