"""conda's record of what an environment holds: `conda-meta/<name>-<version>-<build>.json`."""

from __future__ import annotations

import json

from .errors import Unreadable
from .model import Package


def parse(path: str, data: bytes) -> list[Package]:
    try:
        record = json.loads(data)
    except (ValueError, RecursionError) as error:  # RecursionError: a hostile file nests deeper than json can
        raise Unreadable(f"{path}: not JSON ({str(error)[:80]})") from None
    if not isinstance(record, dict):
        raise Unreadable(f"{path}: not a JSON object")
    name, version = record.get("name"), record.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return []
    qualifiers = [(key, value) for key in ("build", "channel", "subdir")
                  if isinstance(value := record.get(key), str) and value]
    license_value = record.get("license")
    licenses = (license_value,) if isinstance(license_value, str) and license_value else ()
    return [Package("conda", name, version, path, licenses, tuple(qualifiers))]
