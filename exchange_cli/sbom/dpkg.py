"""dpkg's database: var/lib/dpkg/status, and the one-stanza files of var/lib/dpkg/status.d/ (distroless)."""

from __future__ import annotations

from .fields import decode, stanzas
from .model import Package

# The "Status:" field is "want flag state"; only this state means the files are on disk.
INSTALLED = "installed"


def parse(path: str, data: bytes, limit: int) -> list[Package]:
    """Every installed package of a status file, at most `limit` of them. A status.d file has no Status
    field: it is installed."""
    in_status_d = "/status.d/" in f"/{path}"
    packages: list[Package] = []
    for record in stanzas(decode(data)):
        if len(packages) >= limit:
            break
        name, version = record.get("Package", ""), record.get("Version", "")
        if not name or not version:
            continue
        status = record.get("Status")
        if status is None and not in_status_d:
            continue
        if status is not None and status.split()[-1:] != [INSTALLED]:
            continue
        qualifiers = [("arch", record["Architecture"])] if record.get("Architecture") else []
        source = record.get("Source", "").split(" ")[0]
        if source and source != name:
            qualifiers.append(("upstream", source))  # the source package: what Debian's security tracker names
        packages.append(Package("deb", name, version, path, qualifiers=tuple(qualifiers)))
    return packages
