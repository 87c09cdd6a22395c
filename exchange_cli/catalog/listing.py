"""`exchange list`: every entry with its versions, newest first, and whether each is processed."""

from __future__ import annotations

from typing import Any, TextIO

from ..quoting import printable
from .lifecycle import Decision
from .model import CatalogEntry


def listing_as_json(entries: list[CatalogEntry]) -> list[dict[str, Any]]:
    return [{"org": e.org, "kind": e.kind.value, "name": e.name, "entry": e.entry_ref or e.ref,
             "deprecated": decision_json(e.deprecation),
             "versions": [{"version": v.version, "processed": v.processed, "state": v.state, "signed": v.signed,
                           "key-id": v.key_id, "yanked": decision_json(v.yank)} for v in e.versions]}
            for e in entries]


def decision_json(decision: Decision | None) -> dict[str, Any] | None:
    """A yank or a deprecation as every JSON output shows it (null: none)."""
    return decision.as_json() if decision is not None else None


def render_listing(entries: list[CatalogEntry], stream: TextIO) -> None:
    for entry in entries:
        stored = f", entry {entry.entry_ref}" if entry.entry_ref else ""
        deprecated = f" deprecated: {entry.deprecation.described()}" if entry.deprecation else ""
        print(printable(f"{entry.ref} ({entry.kind.value}{stored}){deprecated}"), file=stream)
        width = max((len(v.version) for v in entry.versions), default=0)
        for version in entry.versions:
            state = {"processed": "processed", "pending": "not processed",
                     "skipped": "skipped (behind the sentinel, never processed)"}[version.state]
            signed = ", signed" if version.signed else ""
            yanked = f", yanked: {version.yank.described()}" if version.yank else ""
            print(printable(f"  {version.version:<{width}}  {state}{signed}{yanked}"), file=stream)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=stream)
