"""`exchange show`: what a consumer needs to trust and trace one processed version."""

from __future__ import annotations

from typing import Any, TextIO

from ..errors import ExchangeError
from ..progress import format_bytes
from ..quoting import printable
from ..specs import image_field
from ..storage.bucket import Bucket
from .lifecycle import Decision
from .model import CatalogEntry, CatalogVersion


def essentials(entry: CatalogEntry, version: CatalogVersion, bucket: Bucket | None = None) -> dict[str, Any]:
    """What a consumer needs. An old pipeline's manifest records neither the image nor the size: the image
    is read from its embedded spec, and the size from the bucket's object when a bucket is given."""
    record = version.record
    return {
        "kind": entry.kind.value,
        "org": entry.org,
        "name": entry.name,
        "entry": entry.entry_ref or entry.ref,
        "version": version.version,
        "label": version.field("label") if isinstance(version.field("label"), str) else None,
        "image": record.get("image") or _spec_image(entry, version),
        "image-digest-reference": record.get("image-digest-reference"),
        "image-config-digest": record.get("image-config-digest"),
        "platform": record.get("platform"),
        "rootfs-url": version.rootfs_url,
        "rootfs-hash": version.rootfs_hash,
        "rootfs-size": version.rootfs_size if version.rootfs_size is not None else _object_size(version, bucket),
        "git-commit": record.get("git-commit"),
        "signed": version.signed,
        "key-id": version.key_id,
        "mirrored-image": record.get("mirrored-image"),
        "manifest": version.manifest.relative if version.manifest else None,
        "versions": [v.version for v in entry.versions],
        "yanked": version.yank.as_json() if version.yank else None,
        "deprecated": entry.deprecation.as_json() if entry.deprecation else None,
    }


def _spec_image(entry: CatalogEntry, version: CatalogVersion) -> str | None:
    image = image_field(version.spec, entry.kind)[1]
    return image if isinstance(image, str) else None


def _object_size(version: CatalogVersion, bucket: Bucket | None) -> int | None:
    name = version.manifest.bucket_object if version.manifest is not None else None
    if bucket is None or name is None:
        return None
    try:
        found = bucket.stat(name)
    except ExchangeError:
        return None
    return found.size if found is not None else None


def render_essentials(details: dict[str, Any], stream: TextIO) -> None:
    """A two-column table in plain text: hashes and URLs stay whole on one line, ready to copy."""
    width = max(len(key) for key in details)
    for key, value in details.items():
        print(printable(f"{key:<{width}}  {_shown(key, value)}"), file=stream)


def _shown(key: str, value: Any) -> str:
    if key == "rootfs-size":
        return "unknown (the manifest does not record it; --bucket asks the bucket)" if value is None else \
            f"{value} bytes ({format_bytes(value)})"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("yanked", "deprecated") and isinstance(value, dict):  # a decision: its one line
        return Decision.from_json(value, key, deprecation=True).described()
    return ", ".join(value) if isinstance(value, list) else ("-" if value is None else str(value))
