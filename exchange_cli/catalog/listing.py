"""`exchange list`: every entry with its versions, newest first, and whether each is processed."""

from __future__ import annotations

from typing import Any, TextIO

from ..quoting import printable
from .model import CatalogEntry


def listing_as_json(entries: list[CatalogEntry]) -> list[dict[str, Any]]:
    return [{"org": e.org, "kind": e.kind.value, "name": e.name, "entry": e.entry_ref or e.ref,
             "versions": [{"version": v.version, "processed": v.processed, "state": v.state, "signed": v.signed,
                           "key-id": v.key_id} for v in e.versions]}
            for e in entries]


def render_listing(entries: list[CatalogEntry], stream: TextIO) -> None:
    for entry in entries:
        stored = f", entry {entry.entry_ref}" if entry.entry_ref else ""
        print(printable(f"{entry.ref} ({entry.kind.value}{stored})"), file=stream)
        width = max((len(v.version) for v in entry.versions), default=0)
        for version in entry.versions:
            state = {"processed": "processed", "pending": "not processed",
                     "skipped": "skipped (behind the sentinel, never processed)"}[version.state]
            signed = ", signed" if version.signed else ""
            print(printable(f"  {version.version:<{width}}  {state}{signed}"), file=stream)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=stream)
