"""apk's database: lib/apk/db/installed (Alpine and its relatives)."""

from __future__ import annotations

from .fields import apk_records, decode
from .model import Package


def parse(path: str, data: bytes, limit: int) -> list[Package]:
    """Every package of the database, at most `limit` of them."""
    packages: list[Package] = []
    for record in apk_records(decode(data)):
        if len(packages) >= limit:
            break
        name, version = record.get("P", ""), record.get("V", "")
        if not name or not version:
            continue
        qualifiers = [("arch", record["A"])] if record.get("A") else []
        if record.get("o") and record["o"] != name:
            qualifiers.append(("upstream", record["o"]))  # the origin (source) package
        licenses = (record["L"],) if record.get("L") else ()
        packages.append(Package("apk", name, version, path, licenses, tuple(qualifiers)))
    return packages
