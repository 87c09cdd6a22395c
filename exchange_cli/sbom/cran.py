"""Installed R packages: `<library>/<package>/DESCRIPTION`, where R's `Package:` names its own directory."""

from __future__ import annotations

from .fields import decode, stanzas
from .model import Package


def parse(path: str, data: bytes) -> list[Package]:
    record = next(stanzas(decode(data)), {})
    name, version = record.get("Package", ""), record.get("Version", "")
    directory = path.rsplit("/", 2)[-2] if path.count("/") >= 1 else ""
    # An installed package's DESCRIPTION says `Built:`; a source tree's does not.
    if not name or not version or name != directory or "Built" not in record:
        return []
    licenses = (record["License"],) if record.get("License") else ()
    return [Package("cran", name, version, path, licenses)]
