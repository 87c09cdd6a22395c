"""The findings as the renderer's child receives them (renderer.py): JSON-ready lists and objects, and back."""

from __future__ import annotations

import dataclasses
from typing import Any

from .model import OperatingSystem, Package


def encode_package(package: Package) -> list[Any]:
    return [package.ecosystem, package.name, package.version, package.path, package.licenses, package.qualifiers]


def decode_package(fields: list[Any]) -> Package:
    ecosystem, name, version, path, licenses, qualifiers = fields
    return Package(ecosystem, name, version, path, licenses=tuple(licenses),
                   qualifiers=tuple((key, value) for key, value in qualifiers))


def os_fields(os: OperatingSystem | None) -> dict[str, str] | None:
    return dataclasses.asdict(os) if os is not None else None


def os_of(fields: dict[str, str] | None) -> OperatingSystem | None:
    return OperatingSystem(**fields) if fields is not None else None
