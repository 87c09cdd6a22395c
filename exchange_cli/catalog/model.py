"""One entry per org/kind/name, joining the weakly-versioned spec with the manifests processed from it.

An entry's name is the spec's file stem (``gears/<org>/<name>.json``), which also names its manifests
(``manifests/<org>/<org>-<name>-sha384-<hex>.json``) and rootfs objects. Matching is always on the
whole name, so ``acme/hello`` never picks up ``acme/hello-world``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..manifests import ManifestIndex, ProcessedManifest
from ..repository import Exchange
from ..specs import SpecKind, read_spec
from ..versions import version_key

_MANIFEST_FILE = re.compile(r"(?P<stem>.+)-(?P<algorithm>sha\d+)-(?P<hex>[0-9a-f]+)\.json")


@dataclass(frozen=True)
class CatalogVersion:
    version: str
    spec: dict[str, Any]
    manifest: ProcessedManifest | None  # None: the spec names this version but it is not processed yet

    @property
    def processed(self) -> bool:
        return self.manifest is not None

    @property
    def record(self) -> dict[str, Any]:
        """The manifest's ``"exchange"`` block; empty when not processed."""
        return self.manifest.exchange if self.manifest is not None else {}

    @property
    def rootfs_hash(self) -> str | None:
        value = self.record.get("rootfs-hash")
        return value if isinstance(value, str) else None

    @property
    def rootfs_url(self) -> str | None:
        value = self.record.get("rootfs-url")
        return value if isinstance(value, str) else None

    @property
    def rootfs_size(self) -> int | None:
        value = self.record.get("rootfs-size")
        return value if isinstance(value, int) else None

    def field(self, key: str) -> Any:
        return self.spec.get(key)


@dataclass
class CatalogEntry:
    org: str
    kind: SpecKind
    name: str
    spec_path: Path | None = None  # the spec under gears/ or boutiques/, when there is one
    spec_version: str | None = None  # the version that spec names
    manifests: list[ProcessedManifest] = field(default_factory=list)
    versions: list[CatalogVersion] = field(default_factory=list)  # newest first

    @property
    def ref(self) -> str:
        return f"{self.org}/{self.name}"

    @property
    def latest(self) -> CatalogVersion | None:
        return self.versions[0] if self.versions else None

    @property
    def latest_processed(self) -> CatalogVersion | None:
        return next((v for v in self.versions if v.processed), None)

    def version(self, version: str) -> CatalogVersion | None:
        return next((v for v in self.versions if v.version == version), None)


@dataclass
class Catalog:
    entries: list[CatalogEntry]

    def find(self, org: str, name: str, kind: SpecKind | None = None) -> list[CatalogEntry]:
        return [e for e in self.entries if e.org == org and e.name == name and kind in (None, e.kind)]

    def in_org(self, org: str | None) -> list[CatalogEntry]:
        return [e for e in self.entries if org is None or e.org == org]


def manifest_entry_name(manifest: ProcessedManifest) -> str:
    """The name a manifest's file carries after ``<org>-``; the embedded spec's name for other layouts."""
    org = manifest.org or ""
    match = _MANIFEST_FILE.fullmatch(manifest.path.name)
    if match and match["stem"].startswith(f"{org}-") and len(match["stem"]) > len(org) + 1:
        return match["stem"][len(org) + 1:]
    return manifest.name or manifest.path.stem


def artifact_object_name(manifest: ProcessedManifest) -> str:
    """The bucket object holding a manifest's rootfs (see ProcessedManifest.bucket_object)."""
    return manifest.bucket_object or f"{manifest.path.stem}.tgz"


def load_catalog(exchange: Exchange) -> Catalog:
    entries: dict[tuple[str, SpecKind, str], CatalogEntry] = {}

    def entry(org: str, kind: SpecKind, name: str) -> CatalogEntry:
        return entries.setdefault((org, kind, name), CatalogEntry(org, kind, name))

    for manifest in ManifestIndex.load(exchange.manifests_dir).manifests:
        if manifest.key is not None and manifest.org is not None:
            entry(manifest.org, manifest.kind, manifest_entry_name(manifest)).manifests.append(manifest)
    specs: dict[tuple[str, SpecKind, str], dict[str, Any]] = {}
    for path in exchange.all_spec_paths():
        spec = read_spec(path, exchange.root)
        location, data = spec.location, spec.data
        if location is None or not isinstance(data, dict):
            continue  # `exchange validate` reports these (links, bad JSON); the catalog shows what can be read
        key = (location.org, location.kind, location.stem)
        found = entry(*key)
        found.spec_path = path
        version = data.get(location.kind.version_key)
        found.spec_version = version if isinstance(version, str) else None
        specs[key] = data
    for key, item in entries.items():
        item.versions = _versions(item, specs.get(key))
    # A spec that names no version yet (a draft, an invalid file) has nothing to list, show or fetch.
    listed = [e for e in entries.values() if e.versions]
    return Catalog(sorted(listed, key=lambda e: (e.org, e.name, e.kind.value)))


def _versions(entry: CatalogEntry, spec: dict[str, Any] | None) -> list[CatalogVersion]:
    by_version: dict[str, CatalogVersion] = {}
    # Sorted by path so that, for a version processed twice, the choice does not depend on the file system.
    for manifest in sorted(entry.manifests, key=lambda m: m.path.name):
        by_version[manifest.version] = CatalogVersion(manifest.version, manifest.spec, manifest)  # type: ignore[index]
    if spec is not None:
        version = spec.get(entry.kind.version_key)
        if isinstance(version, str) and version not in by_version:
            by_version[version] = CatalogVersion(version, spec, None)
    return sorted(by_version.values(), key=lambda v: version_key(v.version), reverse=True)

