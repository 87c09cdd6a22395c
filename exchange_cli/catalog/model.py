"""The one model of what a gear is, which every command uses (list, show, fetch, remove, inventory,
index, history, validate, add-gear, verify-storage).

- An *entry* is a spec file: ``(kind, org, file stem)``, i.e. ``gears/<org>/<stem>.json``. Its org and
  stem name the manifests and artifacts processed from it
  (``manifests/<org>/<org>-<stem>-sha384-<hex>.json``), as the old pipeline named them; a version whose
  rootfs is byte-identical to an older version's is ``<org>-<stem>@<version>-sha384-<hex>.json``.
- The spec in it says what the gear is: its ``name`` and version (``tool-version`` for a boutique).
  Versions are identified, and must be unique, by name and version within the org.
- Usually stem and name are equal; in exchanges grown over years they often are not
  (``gears/acme/c-pac.json`` holds ``cpac``), and a gear's older manifests carry the stem of the file it
  had then (``acme-manifest-…`` from ``gears/acme/manifest.json``).

A `CatalogEntry` is one gear or boutique, ``(kind, org, name)``: its entry (the spec file that names it
today, if any) and every manifest whose embedded spec has that org and name, versions newest first. A
command names it as ``org/name`` or ``org/stem`` (any stem it was ever stored under); a manifest stored
directly under manifests/ has no org and is named by its name alone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..manifests import ManifestProblem, ManifestScan, ProcessedManifest, load_manifests
from ..names import suggested_name
from ..repository import Exchange
from ..specs import SpecKind, SpecLocation, locate, read_spec
from ..versions import version_key
from .lifecycle import Decision, GearKey, Lifecycle, decision_warnings, record_path


def expected_stem(name: str, kind: SpecKind) -> str:
    """The file stem a new entry for `name` gets: a gear's name as it is (its schema restricts it to
    ``[a-z0-9-]``), a descriptor's name made a NAME (Boutiques names are free text; names.suggested_name)."""
    return name if kind is SpecKind.GEAR else suggested_name(name)


def manifest_stem(manifest: ProcessedManifest) -> str | None:
    """The file stem a manifest is named after (``<org>-<stem>[@<version>]-<algo>-<hex>.json``; deeper
    folders joined by '-' as the old pipeline did); None for a file not named that way."""
    named = manifest.file_name
    if named is None:
        return None
    base = named.base
    if manifest.org is None:
        return base
    prefix = f"{manifest.org}-"
    return base[len(prefix):] if base.startswith(prefix) and len(base) > len(prefix) else None


@dataclass(frozen=True)
class CatalogVersion:
    version: str
    spec: dict[str, Any]
    manifest: ProcessedManifest | None  # None: the spec names this version but it is not processed yet
    # Not processed, and its spec unchanged since the sentinel: the sentinel was moved past it (the old
    # pipeline's maintainers did that by hand to skip a version); it waits for no run.
    skipped: bool = False
    # Yanked by a maintainer (catalog.lifecycle): never chosen as the newest, still fetchable by exact version.
    yank: Decision | None = None

    @property
    def yanked(self) -> bool:
        return self.yank is not None

    @property
    def processed(self) -> bool:
        return self.manifest is not None

    @property
    def signed(self) -> bool:
        """Published with signed provenance (an envelope the manifest pins)."""
        return isinstance(self.record.get("attestation-url"), str)

    @property
    def key_id(self) -> str | None:
        """The key that signed it, as the manifest records it (older signed manifests do not)."""
        value = self.record.get("attestation-key-id")
        return value if isinstance(value, str) else None

    @property
    def state(self) -> str:
        """processed, pending (a run will process it) or skipped (see `skipped`)."""
        return "processed" if self.processed else ("skipped" if self.skipped else "pending")

    @property
    def record(self) -> dict[str, Any]:
        """The manifest's ``"exchange"`` block; empty when not processed."""
        return self.manifest.exchange if self.manifest is not None else {}

    @property
    def rootfs_hash(self) -> str | None:
        return self.manifest.rootfs_hash if self.manifest is not None else None

    @property
    def rootfs_url(self) -> str | None:
        return self.manifest.rootfs_url if self.manifest is not None else None

    @property
    def rootfs_size(self) -> int | None:
        value = self.record.get("rootfs-size")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def is_image(self) -> bool:
        return self.manifest is not None and self.manifest.is_image

    def field(self, key: str) -> Any:
        return self.spec.get(key)


@dataclass
class CatalogEntry:
    org: str | None
    kind: SpecKind
    name: str
    spec_location: SpecLocation | None = None  # the entry: the spec file that names this gear today
    spec_path: Path | None = None
    spec_version: str | None = None  # the version that spec names
    manifests: list[ProcessedManifest] = field(default_factory=list)
    versions: list[CatalogVersion] = field(default_factory=list)  # newest first
    deprecation: Decision | None = None  # a maintainer's deprecation (catalog.lifecycle)

    @property
    def ref(self) -> str:
        """How commands name it: ``org/name`` (just ``name`` without an org)."""
        return f"{self.org}/{self.name}" if self.org else self.name

    @property
    def stem(self) -> str | None:
        """The entry's file stem: the spec file's, else that of the newest manifest's file."""
        if self.spec_location is not None:
            return self.spec_location.stem
        for version in self.versions:
            if version.manifest is not None and (stem := manifest_stem(version.manifest)) is not None:
                return stem
        return None

    @property
    def stems(self) -> set[str]:
        """Every file stem this gear was stored under: the spec file's and its manifests'."""
        found = {stem for m in self.manifests if (stem := manifest_stem(m)) is not None}
        return found | ({self.spec_location.stem} if self.spec_location else set())

    @property
    def entry_ref(self) -> str | None:
        """``org/stem``, the entry, when it differs from `ref`; None when they agree."""
        stem = self.stem
        if stem is None or stem == self.name:
            return None
        return f"{self.org}/{stem}" if self.org else stem

    @property
    def latest(self) -> CatalogVersion | None:
        """The newest version not yanked (what describes the gear); the newest of all when every one is."""
        return next((v for v in self.versions if not v.yanked), self.versions[0] if self.versions else None)

    @property
    def latest_processed(self) -> CatalogVersion | None:
        """What a command without @VERSION chooses: the newest processed version that is not yanked."""
        return next((v for v in self.versions if v.processed and not v.yanked), None)

    def version(self, version: str) -> CatalogVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    def answers_to(self, name: str) -> bool:
        return name == self.name or name in self.stems


@dataclass
class Catalog:
    entries: list[CatalogEntry]
    scan: ManifestScan = field(default_factory=ManifestScan)  # every manifest, placed or not
    problems: list[ManifestProblem] = field(default_factory=list)  # what could not be read or placed
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle(None))  # yanks and deprecations

    def find(self, org: str | None, name: str, kind: SpecKind | None = None) -> list[CatalogEntry]:
        """Entries called `name` or stored under the file stem `name`; any org when `org` is None."""
        return [e for e in self.entries
                if (org is None or e.org == org) and kind in (None, e.kind) and e.answers_to(name)]

    def in_org(self, org: str | None) -> list[CatalogEntry]:
        return [e for e in self.entries if org is None or e.org == org]


def load_catalog(exchange: Exchange) -> Catalog:
    scan = load_manifests(exchange.manifests_dir)
    problems = list(scan.problems)
    entries: dict[GearKey, CatalogEntry] = {}

    def entry(key: GearKey) -> CatalogEntry:
        return entries.setdefault(key, CatalogEntry(*key))

    for manifest in scan.manifests:
        if manifest.key is None:
            problems.append(ManifestProblem(manifest.relative, unplaced_reason(manifest)))
            continue
        entry((manifest.org, manifest.kind, manifest.key.name)).manifests.append(manifest)
    specs: dict[GearKey, dict[str, Any]] = {}
    skipped_paths = _behind_the_sentinel(exchange)
    for path, location, data in read_spec_entries(exchange):
        named = data.get("name")
        key: GearKey = (location.org, location.kind, named if isinstance(named, str) else location.stem)
        found = entry(key)
        if found.spec_location is not None:
            # `exchange validate` fails both files (duplicate-name); the catalog keeps the first.
            problems.append(ManifestProblem(location.relative_path, f"{found.ref} is also the gear in "
                                                                    f"{found.spec_location.relative_path}; not listed"))
            continue
        version = data.get(location.kind.version_key)
        found.spec_location, found.spec_path = location, path
        found.spec_version = version if isinstance(version, str) else None
        specs[key] = data
    lifecycle = Lifecycle(exchange.root)
    for key, item in entries.items():
        behind = item.spec_location is not None and item.spec_location.relative_path in skipped_paths
        item.versions = _versions(item, specs.get(key), skipped=behind)
        problems.extend(_apply_decisions(item, lifecycle))
    problems.extend(lifecycle.problems)
    # A spec that names no version yet (a draft, an invalid file) has nothing to list, show or fetch.
    listed = [e for e in entries.values() if e.versions]
    return Catalog(sorted(listed, key=lambda e: (e.org or "", e.name, e.kind.value)), scan,
                   sorted(problems, key=lambda p: p.path), lifecycle)


def _apply_decisions(entry: CatalogEntry, lifecycle: Lifecycle) -> list[ManifestProblem]:
    """The entry's yanks and deprecation from its record; a yank of a version it does not have is named."""
    record = lifecycle.record(entry.org, entry.kind, entry.name)
    if record is None:
        return []
    entry.deprecation = record.deprecated
    entry.versions = [replace(v, yank=record.yanked.get(v.version)) for v in entry.versions]
    known = {v.version for v in entry.versions}
    return [ManifestProblem(record_path(*record.key), f"yanks {version!a}, a version {entry.ref} does not have")
            for version in record.yanked if version not in known]


def read_spec_entries(exchange: Exchange) -> list[tuple[Path, SpecLocation, dict[str, Any]]]:
    """Every readable spec at a spec's place; `exchange validate` reports the others."""
    found = []
    for path in exchange.all_spec_paths():
        spec = read_spec(path, exchange.root)  # links and files outside the repository are refused unread
        location, data = spec.location, spec.data
        if location is not None and spec.document.ok and isinstance(data, dict):
            found.append((path, location, data))
    return found


@dataclass
class EntryClaims:
    """Which spec files hold which gear, for the rules on entries: one file per org/kind/name
    (``duplicate-name``), and a new file named after its gear (``file-name``)."""

    claims: dict[GearKey, list[str]] = field(default_factory=dict)  # -> repository-relative spec paths
    established: set[str] = field(default_factory=set)  # spec paths already in the exchange

    @classmethod
    def load(cls, exchange: Exchange, manifests: list[ProcessedManifest],
             established: set[str] | None = None) -> EntryClaims:
        """`established`: the spec files already in the exchange when the caller knows them (a target
        branch's); else those at the exchange's own sentinel."""
        claims: dict[GearKey, list[str]] = defaultdict(list)
        for _, location, data in read_spec_entries(exchange):
            if isinstance(data.get("name"), str):
                claims[(location.org, location.kind, data["name"])].append(location.relative_path)
        # Already in the exchange: at the sentinel commit, or processed before (manifests named after it).
        processed = {SpecLocation(m.kind, m.org, stem).relative_path
                     for m in manifests if m.org is not None and (stem := manifest_stem(m)) is not None}
        return cls(dict(claims), (exchange.established_spec_paths() if established is None else established) | processed)

    def others(self, location: SpecLocation, name: str) -> list[str]:
        """The other spec files holding `name` in the same org."""
        return [p for p in self.claims.get((location.org, location.kind, name), []) if p != location.relative_path]

    def find(self, kind: SpecKind, name: str, org: str | None) -> list[SpecLocation]:
        """The entries holding `name` (in `org`, or in any org)."""
        found = [loc for (o, k, n), paths in self.claims.items() if k is kind and n == name
                 and org in (None, o) for p in paths if (loc := locate(p)) is not None]
        return sorted(found, key=lambda location: location.relative_path)


def unplaced_reason(manifest: ProcessedManifest) -> str:
    field_name = manifest.kind.version_key if manifest.name is not None else "name"
    value = manifest.spec.get(field_name)
    shown = "missing" if field_name not in manifest.spec else f"{json.dumps(value)}, not a string"
    return f"its embedded {manifest.kind.value}'s {field_name} is {shown}: no version to list it under"


def _behind_the_sentinel(exchange: Exchange) -> frozenset[str]:
    """Spec files whose content the sentinel's commit already had (none without a sentinel)."""
    sentinel = exchange.read_sentinel()
    if sentinel is None:
        return frozenset()
    try:
        return exchange.unchanged_spec_paths(sentinel)
    except UsageError:  # a sentinel this clone cannot resolve (shallow): nothing is called skipped
        return frozenset()


def _versions(entry: CatalogEntry, spec: dict[str, Any] | None, *, skipped: bool = False) -> list[CatalogVersion]:
    by_version: dict[str, CatalogVersion] = {}
    # Sorted by path so that, for a version processed twice, the choice does not depend on the file system.
    for manifest in sorted(entry.manifests, key=lambda m: m.relative):
        assert manifest.version is not None  # placed manifests have a key
        by_version[manifest.version] = CatalogVersion(manifest.version, manifest.spec, manifest)
    if spec is not None:
        version = spec.get(entry.kind.version_key)
        if isinstance(version, str) and version not in by_version:
            by_version[version] = CatalogVersion(version, spec, None, skipped=skipped)
    return sorted(by_version.values(), key=lambda v: version_key(v.version), reverse=True)




def entry_warnings(entry: CatalogEntry, version: CatalogVersion | None) -> list[str]:
    """What a command using `version` of `entry` says on stderr: it is yanked, the gear is deprecated."""
    return decision_warnings(entry.ref, version.version if version else None, version.yank if version else None,
                             entry.deprecation)
