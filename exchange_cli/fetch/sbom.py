"""A published version's SBOM, read from its sbom-url (or the bucket) within a size cap and checked
against the sha256 its manifest pins; and the search of every published SBOM for a package."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..catalog.model import Catalog, CatalogEntry, CatalogVersion
from ..errors import ExchangeError, redact
from ..provenance.verify import SBOM_LIMIT
from ..remote import open_named_url
from ..sbom.errors import Unreadable
from ..sbom.query import ComponentRow, PackageSpec, SbomSummary, read
from ..storage.bucket import Bucket
from .run import bounded_stream

SEARCH_WORKERS = 8  # SBOMs downloaded at once by `packages`


class NoSbom(ExchangeError):
    """The version was published without an SBOM (before SBOMs existed, or delivered as an image)."""


def read_published_sbom(shown: str, version: CatalogVersion, *, bucket: Bucket | None = None,
                        fetched_from: str | None = None) -> bytes:
    """The SBOM document's bytes, exactly as published (ExchangeError when absent, too large or altered)."""
    manifest = version.manifest
    assert manifest is not None, "a processed version"
    url, name, pinned = version.record.get("sbom-url"), manifest.sbom_object, manifest.sbom_sha256
    if not isinstance(url, str) or name is None or pinned is None:
        raise NoSbom(f"{shown} was published without an SBOM (before SBOMs were made, or delivered as an image)")
    if bucket is not None:
        source, opened = f"{bucket.uri}/{name}", bounded_stream(bucket.open_read(name), SBOM_LIMIT, f"{bucket.uri}/{name}")
    else:
        source, opened = redact(url), open_named_url(url, fetched_from, SBOM_LIMIT)
    with opened as stream:
        document = b"".join(iter(lambda: stream.read(1 << 20), b""))
    actual = hashlib.sha256(document).hexdigest()
    if actual != pinned:
        raise ExchangeError(f"{source}: the SBOM hashes to sha256:{actual}, but {shown}'s manifest pins {pinned}")
    return document


def summary_of(shown: str, document: bytes) -> SbomSummary:
    try:
        return read(document)
    except Unreadable as error:
        raise ExchangeError(f"{shown}: its SBOM is {error}") from None


@dataclass(frozen=True)
class Hit:
    reference: str  # org/name@version
    component: ComponentRow


@dataclass
class Search:
    hits: list[Hit]
    searched: int  # versions whose SBOM was read
    without_sbom: list[str]  # versions published without one
    failed: dict[str, str]  # version -> why its SBOM could not be read


def search_packages(catalog: Catalog, spec: PackageSpec, *, bucket: Bucket | None = None) -> Search:
    """Every processed version whose SBOM lists a package matching `spec`; only SBOMs are downloaded."""
    versions = list(_processed(catalog))
    result = Search([], 0, [], {})
    with ThreadPoolExecutor(max_workers=SEARCH_WORKERS, thread_name_prefix="sbom-search") as pool:
        outcomes = pool.map(lambda item: _rows_of(item[0], item[1], bucket), versions)
        for (shown, _), outcome in zip(versions, outcomes, strict=True):
            if isinstance(outcome, NoSbom):
                result.without_sbom.append(shown)
            elif isinstance(outcome, ExchangeError):
                result.failed[shown] = str(outcome)
            else:
                result.searched += 1
                result.hits += [Hit(shown, row) for row in outcome if spec.matches(row)]
    return result


def _processed(catalog: Catalog) -> Iterator[tuple[str, CatalogVersion]]:
    for entry in sorted(catalog.entries, key=_entry_key):
        for version in entry.versions:
            if version.processed:
                yield f"{entry.ref}@{version.version}", version


def _entry_key(entry: CatalogEntry) -> tuple[str, str]:
    return entry.org or "", entry.name


def _rows_of(shown: str, version: CatalogVersion, bucket: Bucket | None) -> list[ComponentRow] | ExchangeError:
    try:
        return summary_of(shown, read_published_sbom(shown, version, bucket=bucket)).components
    except ExchangeError as error:
        return error
