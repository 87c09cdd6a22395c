"""``[gear:|boutique:][ORG/]NAME[@VERSION]``: how commands name one gear of the catalog, and finding it.

NAME is the gear's name or the file stem of its entry (see catalog.model), so ``acme/cpac`` and
``acme/c-pac`` both name the gear in ``gears/acme/c-pac.json``. Without ORG every org is searched.
A reference that fits more than one gear is refused, with the candidates.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ..errors import ExchangeError, UsageError
from ..specs import SpecKind
from .model import Catalog, CatalogEntry, CatalogVersion

_REFERENCE = re.compile(r"(?:(?P<kind>gear|boutique):)?(?:(?P<org>[^/@:\s]+)/)?(?P<name>[^/@\s]+)(?:@(?P<version>\S+))?")


class NotInCatalog(ExchangeError):
    """The reference names nothing the exchange holds, or several things: a usage error, as a missing file."""

    exit_code = 2


@dataclass(frozen=True)
class EntryReference:
    org: str | None
    name: str
    version: str | None = None
    kind: SpecKind | None = None

    @classmethod
    def parse(cls, text: str) -> "EntryReference":
        match = _REFERENCE.fullmatch(text.strip())
        if match is None:
            raise UsageError(f"{text!r} is not [ORG/]NAME[@VERSION] (e.g. acme/hello-world@1.0.0; "
                             "prefix gear: or boutique: when both exist)")
        kind = SpecKind(match["kind"]) if match["kind"] else None
        return cls(match["org"], match["name"], match["version"], kind)

    @property
    def ref(self) -> str:
        return f"{self.org}/{self.name}" if self.org else self.name

    def __str__(self) -> str:
        return self.ref + (f"@{self.version}" if self.version else "")


def find_entry(catalog: Catalog, reference: EntryReference) -> CatalogEntry:
    found = catalog.find(reference.org, reference.name, reference.kind)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise UsageError(f"{reference.ref} is ambiguous; it names {len(found)} entries: "
                         + "; ".join(_described(e) for e in found)
                         + " (name one as [gear:|boutique:]ORG/NAME, or by its file stem)")
    known = [e.ref for e in catalog.entries] + [e.entry_ref for e in catalog.entries if e.entry_ref]
    close = difflib.get_close_matches(reference.ref, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise NotInCatalog(f"no gear or boutique {reference.ref} in this exchange{hint}")


def _described(entry: CatalogEntry) -> str:
    stored = f", stored as {entry.entry_ref}" if entry.entry_ref else ""
    return f"{entry.kind.value}:{entry.ref}{stored}"


def find_processed_version(entry: CatalogEntry, version: str | None) -> CatalogVersion:
    """The named version, else the newest processed one; it must have a manifest."""
    if version is None:
        chosen = entry.latest_processed
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
