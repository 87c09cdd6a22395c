"""`exchange show`: what a consumer needs to trust and trace one processed version."""

from __future__ import annotations

from typing import Any, TextIO

from ..quoting import printable
from .model import CatalogEntry, CatalogVersion


def essentials(entry: CatalogEntry, version: CatalogVersion) -> dict[str, Any]:
    record = version.record
    return {
        "kind": entry.kind.value,
        "org": entry.org,
        "name": entry.name,
        "entry": entry.entry_ref or entry.ref,
        "version": version.version,
        "label": version.field("label") if isinstance(version.field("label"), str) else None,
        "image": record.get("image"),
        "image-digest-reference": record.get("image-digest-reference"),
        "image-config-digest": record.get("image-config-digest"),
        "platform": record.get("platform"),
        "rootfs-url": version.rootfs_url,
        "rootfs-hash": version.rootfs_hash,
        "rootfs-size": version.rootfs_size,
        "git-commit": record.get("git-commit"),
        "mirrored-image": record.get("mirrored-image"),
        "manifest": version.manifest.relative if version.manifest else None,
        "versions": [v.version for v in entry.versions],
    }


def render_essentials(details: dict[str, Any], stream: TextIO) -> None:
    """A two-column table in plain text: hashes and URLs stay whole on one line, ready to copy."""
    width = max(len(key) for key in details)
    for key, value in details.items():
        shown = ", ".join(value) if isinstance(value, list) else ("-" if value is None else str(value))
        print(printable(f"{key:<{width}}  {shown}"), file=stream)
