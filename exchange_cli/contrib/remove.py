"""`exchange remove`: an entry's spec and manifests in one commit, and optionally their bucket objects.

Only the exact org/kind/name is touched (see catalog.model); an object still referenced by a manifest
that stays (another version with the same rootfs, any other manifest under manifests/) is never purged,
and nothing is purged while some manifest cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import git
from ..catalog.lifecycle import record_path
from ..catalog.model import Catalog, CatalogEntry
from ..catalog.reference import NotInCatalog
from ..commit_identity import commit_env
from ..committed import commit_changes, write_changes
from ..errors import Category, ExchangeError
from ..manifests import ManifestScan, ProcessedManifest
from ..process.references import published_references
from ..repository import Exchange
from ..storage.bucket import Bucket


@dataclass(frozen=True)
class Removal:
    entry: CatalogEntry
    version: str | None
    paths: tuple[str, ...]  # repository-relative: the spec (when it goes), the manifests, the record (when it goes)
    objects: tuple[str, ...]  # bucket objects that no remaining manifest references
    # The gear's yank record without the removed version's yank: (path, its new text); a version published
    # again later must not come back yanked by a record that names what is gone.
    record: tuple[str, str] | None = None

    @property
    def message(self) -> str:
        suffix = f" {self.version}" if self.version else ""
        return f"Remove {self.entry.kind.value} {self.entry.ref}{suffix}"


@dataclass(frozen=True)
class PurgeOutcome:
    deleted: tuple[str, ...]
    absent: tuple[str, ...]


def plan_removal(exchange: Exchange, catalog: Catalog, entry: CatalogEntry, version: str | None) -> Removal:
    if version is None:
        manifests = list(entry.manifests)
        spec_goes = entry.spec_path is not None
    else:
        manifests = [m for m in entry.manifests if m.version == version]
        spec_goes = entry.spec_path is not None and entry.spec_version == version
        if not manifests and not spec_goes:
            available = ", ".join(v.version for v in entry.versions) or "none"
            raise NotInCatalog(f"{entry.ref} has no version {version} (versions: {available})")
    paths = [exchange.relative(m.path) or str(m.path) for m in manifests]
    if spec_goes and entry.spec_path is not None:
        paths.insert(0, exchange.relative(entry.spec_path) or str(entry.spec_path))
    record = _record_after(catalog, entry, version)
    if record is not None and record[1] is None:
        paths.append(record[0])
    return Removal(entry, version, tuple(paths), tuple(_unreferenced_objects(catalog.scan, manifests)),
                   (record[0], record[1]) if record is not None and record[1] is not None else None)


def _record_after(catalog: Catalog, entry: CatalogEntry, version: str | None) -> tuple[str, str | None] | None:
    """The entry's lifecycle record after the removal: None when it is unchanged, text None when it goes."""
    found = catalog.lifecycle.record(entry.org, entry.kind, entry.name)
    if found is None or (version is not None and version not in found.yanked):
        return None
    path = record_path(*found.key)
    if version is None:
        return path, None
    left = replace(found, yanked={v: d for v, d in found.yanked.items() if v != version})
    return path, None if left.empty else left.text()


def apply_removal(exchange: Exchange, removal: Removal) -> str | None:
    """Delete the files and commit exactly them; returns the commit (None when none was tracked)."""
    changes: dict[str, str | None] = dict.fromkeys(removal.paths)
    if removal.record is not None:
        changes[removal.record[0]] = removal.record[1]
    tracked = set(exchange.repo.git.ls_files("-z", "--", *changes).split("\0")) - {""}
    if not tracked:
        write_changes(exchange.root, changes)
        return None
    return commit_changes(exchange.repo, exchange.root, changes, removal.message, commit_env(exchange.repo),
                          committed=tracked)


class RemovalNotPublished(ExchangeError):
    """The removal commit did not reach the remote (the remote refused it: the environment, exit 2): nothing
    was deleted from the bucket."""

    category = Category.ENVIRONMENT


def publish_removal(exchange: Exchange, remote: str) -> None:
    """Push the removal before any object goes: a clone of the remote must never list a version whose
    rootfs is gone. Nothing is deleted when the push fails."""
    branch = git.current_branch(exchange.repo)
    try:
        git.push(exchange.repo, remote, branch)
    except git.PushRejected as rejected:
        raise RemovalNotPublished(f"the removal is committed here but {remote} refused it ({rejected.one_line}); "
                                  "nothing was deleted from the bucket: pull and push, then `exchange "
                                  "verify-storage --delete-orphans` deletes what no manifest references") from None


def still_published(exchange: Exchange, remote: str, names: tuple[str, ...]) -> set[str]:
    """The objects among `names` that a manifest at the remote still references (another run may have
    published one meanwhile); all of them when the remote's manifests cannot all be read."""
    published = published_references(exchange.repo, remote)
    if published is None:
        return set()
    if published.unreadable:
        return set(names)
    return set(names) & set(published.names)


def purge_objects(bucket: Bucket, names: tuple[str, ...]) -> PurgeOutcome:
    deleted: list[str] = []
    absent: list[str] = []
    for name in names:
        (deleted if bucket.delete(name) else absent).append(name)
    return PurgeOutcome(tuple(deleted), tuple(absent))


def _unreferenced_objects(scan: ManifestScan, removed: list[ProcessedManifest]) -> list[str]:
    removed_paths = {m.relative for m in removed}
    remaining = {name for m in scan.manifests if m.relative not in removed_paths for name in m.bucket_objects}
    candidates = {name for m in removed for name in m.bucket_objects}
    return sorted(candidates - remaining)

