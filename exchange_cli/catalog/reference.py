"""``[gear:|boutique:][ORG/]NAME[@VERSION]``, or a manifest's file name: how commands name one gear of
the catalog, and finding it.

NAME is the gear's name or a file stem it was stored under (see catalog.model), so ``acme/cpac`` and
``acme/c-pac`` both name the gear in ``gears/acme/c-pac.json``. Without ORG every org is searched. When
several gears fit, in order:

1. with ``@VERSION``, only those that have that version count (a file that held ``c-pac`` for four
   versions and ``cpac`` after: ``acme/c-pac@5.0`` can only mean the gear that has 5.0);
2. a gear *called* NAME wins over gears merely stored under a file of that name;
3. what still fits several gears is refused, listing for each a reference that resolves to it alone.

A manifest's file name (``acme-c-pac-sha384-<hex>.json``, or its path under manifests/) is the form that
is never ambiguous: it names one version of one gear. `unique_reference` gives, for any version, the
shortest form that resolves to exactly it; the catalog prints that.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..errors import Category, ExchangeError, UsageError
from ..specs import SpecKind
from .model import Catalog, CatalogEntry, CatalogVersion

_REFERENCE = re.compile(r"(?:(?P<kind>gear|boutique):)?(?:(?P<org>[^/@:\s]+)/)?(?P<name>[^/@\s]+)(?:@(?P<version>\S+))?")
MANIFEST_SUFFIX = ".json"


class NotInCatalog(ExchangeError):
    """The reference names nothing the exchange holds, or several things: a usage error, as a missing file."""

    category = Category.USAGE


@dataclass(frozen=True)
class EntryReference:
    org: str | None
    name: str
    version: str | None = None
    kind: SpecKind | None = None
    manifest: str | None = None  # a manifest's file name: one version of one gear

    @classmethod
    def parse(cls, text: str) -> EntryReference:
        text = text.strip()
        if text.endswith(MANIFEST_SUFFIX) and "@" not in text.rpartition("/")[0]:
            name = PurePosixPath(text).name
            return cls(None, name, manifest=name)
        match = _REFERENCE.fullmatch(text)
        if match is None:
            raise UsageError(f"{text!r} is not [ORG/]NAME[@VERSION] (e.g. acme/hello-world@1.0.0; "
                             "prefix gear: or boutique: when both exist) nor a manifest's file name")
        kind = SpecKind(match["kind"]) if match["kind"] else None
        return cls(match["org"], match["name"], match["version"], kind)

    @property
    def ref(self) -> str:
        return f"{self.org}/{self.name}" if self.org else self.name

    def __str__(self) -> str:
        return self.ref + (f"@{self.version}" if self.version else "")


@dataclass(frozen=True)
class Resolved:
    entry: CatalogEntry
    version: str | None  # as named (or the manifest's); None: the command's default (the newest)


def resolve(catalog: Catalog, reference: EntryReference) -> Resolved:
    if reference.manifest is not None:
        return _by_manifest(catalog, reference.manifest)
    found = _candidates(catalog, reference)
    if len(found) == 1:
        return Resolved(found[0], reference.version)
    if len(found) > 1:
        suggestions = [unique_reference(catalog, entry) for entry in found]
        raise NotInCatalog(f"{reference} is ambiguous; it names {len(found)} entries: "
                           + "; ".join(_described(e) for e in found)
                           + "; each of these names one: " + ", ".join(suggestions))
    known = [e.ref for e in catalog.entries] + [e.entry_ref for e in catalog.entries if e.entry_ref]
    close = difflib.get_close_matches(reference.ref, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise NotInCatalog(f"no gear or boutique {reference.ref} in this exchange{hint}")


def _candidates(catalog: Catalog, reference: EntryReference) -> list[CatalogEntry]:
    """The entries `reference` fits, narrowed by its version, then by name over file stem (module doc)."""
    found = catalog.find(reference.org, reference.name, reference.kind)
    if len(found) > 1 and reference.version is not None:
        found = [entry for entry in found if entry.version(reference.version) is not None] or found
    if len(found) > 1:
        found = [entry for entry in found if entry.name == reference.name] or found
    return found


def find_entry(catalog: Catalog, reference: EntryReference) -> CatalogEntry:
    return resolve(catalog, reference).entry


def _by_manifest(catalog: Catalog, file_name: str) -> Resolved:
    for entry in catalog.entries:
        for version in entry.versions:
            manifest = version.manifest
            if manifest is not None and PurePosixPath(manifest.relative).name == file_name:
                return Resolved(entry, version.version)
    raise NotInCatalog(f"no manifest {file_name} in this exchange (a manifest's file name names one version)")


def unique_reference(catalog: Catalog, entry: CatalogEntry, version: str | None = None) -> str:
    """The shortest reference that resolves to `entry` (and `version`) alone: ``org/name[@version]``,
    with ``kind:`` when needed, else the manifest's file name (which always does, for a processed version)."""
    at = f"@{version}" if version is not None else ""
    for text in (f"{entry.ref}{at}", f"{entry.kind.value}:{entry.ref}{at}"):
        if _resolves_to(catalog, text, entry, version):
            return text
    chosen = entry.version(version) if version is not None else entry.latest_processed
    if chosen is not None and chosen.manifest is not None:
        return PurePosixPath(chosen.manifest.relative).name
    return f"{entry.kind.value}:{entry.ref}{at}"


def _resolves_to(catalog: Catalog, text: str, entry: CatalogEntry, version: str | None) -> bool:
    try:
        reference = EntryReference.parse(text)
    except ExchangeError:
        return False
    return _candidates(catalog, reference) == [entry] and (version is None or entry.version(version) is not None)


def _described(entry: CatalogEntry) -> str:
    stored = f", stored as {entry.entry_ref}" if entry.entry_ref else ""
    return f"{entry.kind.value}:{entry.ref}{stored}"


def find_processed_version(entry: CatalogEntry, version: str | None) -> CatalogVersion:
    """The named version (yanked or not: a yanked version stays usable by its exact version), else the
    newest processed one that is not yanked; it must have a manifest."""
    if version is None:
        chosen = entry.latest_processed
        yanked = [v for v in entry.versions if v.processed and v.yanked]
        if chosen is None and yanked:
            raise NotInCatalog(f"every processed version of {entry.ref} is yanked ("
                               + "; ".join(f"{v.version}: {v.yank.described()}" for v in yanked if v.yank)
                               + "); name one as @VERSION to use it anyway")
        if chosen is None:
            raise NotInCatalog(f"{entry.ref} has no processed version yet "
                               f"(spec version {entry.latest.version if entry.latest else '?'} awaits processing)")
        return chosen
    chosen = entry.version(version)
    if chosen is None:
        available = ", ".join(v.version for v in entry.versions) or "none"
        raise NotInCatalog(f"{entry.ref} has no version {version} (versions: {available})")
    if not chosen.processed:
        raise NotInCatalog(f"{entry.ref}@{version} is not processed yet: it has no manifest and no rootfs")
    return chosen
