"""`exchange index`: the global catalog as JSON: every entry, its versions newest first, without
inputs or config (those are on the gear pages of the HTML catalog). Deterministic: the same exchange
gives the same bytes, so republishing an unchanged catalog commits nothing."""

from __future__ import annotations

import json
from typing import Any

from ..specs import image_field
from .model import Catalog, CatalogEntry, CatalogVersion

INDEX_FORMAT_VERSION = 1
SUMMARY_FIELDS = ("label", "description", "author", "license")


def catalog_index(catalog: Catalog) -> dict[str, Any]:
    return {"format": INDEX_FORMAT_VERSION, "entries": [entry_summary(entry) for entry in catalog.entries]}


def entry_summary(entry: CatalogEntry) -> dict[str, Any]:
    # "latest": what `show` and `fetch` choose without @VERSION (the newest processed version not yanked);
    # "versions" keeps every version, yanked ones marked, so a reader taking versions[0] must check "yanked".
    latest = entry.latest_processed
    return {"org": entry.org, "kind": entry.kind.value, "name": entry.name, "ref": entry.ref,
            "entry": entry.entry_ref or entry.ref, "latest": latest.version if latest else None,
            "deprecated": entry.deprecation.as_json() if entry.deprecation else None,
            "versions": [version_summary(entry, version) for version in entry.versions]}


def version_summary(entry: CatalogEntry, version: CatalogVersion) -> dict[str, Any]:
    image = image_field(version.spec, entry.kind)[1]
    summary: dict[str, Any] = {"version": version.version, "processed": version.processed}
    for key in SUMMARY_FIELDS:
        value = version.field(key)
        summary[key] = value if isinstance(value, str) else None
    summary["image"] = image if isinstance(image, str) else None
    summary["rootfs-url"] = version.rootfs_url
    summary["rootfs-hash"] = version.rootfs_hash
    summary["rootfs-size"] = version.rootfs_size
    summary["yanked"] = version.yank.as_json() if version.yank else None
    return summary


def index_text(catalog: Catalog) -> str:
    return json.dumps(catalog_index(catalog), indent=2, ensure_ascii=False, sort_keys=False) + "\n"
