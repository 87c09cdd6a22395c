"""`exchange verify-storage`: the bucket against the manifests. Finds problems; prints nothing.

Every manifest that names a bucket object (its rootfs URL's last segment, or ``<file stem>.tgz`` for a
sha384 rootfs-hash without URL) expects that object. An expected object that is absent is *missing*;
one whose size, recorded hash or (with deep) content differs from the manifest is *damaged*; an object
no manifest expects is an *orphan*. A file under manifests/ that cannot be read might reference any
object: then nothing is an orphan for certain, and `deletable_orphans` refuses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import ExchangeError
from ..manifests import ManifestProblem, ManifestScan, ProcessedManifest
from ..storage.bucket import Bucket, ObjectChanged, ObjectInfo


class UnreadableManifests(ExchangeError):
    """Deleting orphans needs every manifest read: an unreadable one may reference any object."""


@dataclass(frozen=True)
class MissingArtifact:
    object_name: str
    manifests: tuple[str, ...]  # repository-relative paths of the manifests that need it


@dataclass(frozen=True)
class DamagedArtifact:
    object_name: str
    manifests: tuple[str, ...]
    problem: str


@dataclass
class StorageAudit:
    bucket_uri: str
    deep: bool
    checked: int = 0
    missing: list[MissingArtifact] = field(default_factory=list)
    damaged: list[DamagedArtifact] = field(default_factory=list)
    orphans: list[ObjectInfo] = field(default_factory=list)
    unreadable: list[ManifestProblem] = field(default_factory=list)  # files under manifests/ not read

    @property
    def ok(self) -> bool:
        return not (self.missing or self.damaged or self.orphans or self.unreadable)


@dataclass(frozen=True)
class ExpectedArtifact:
    object_name: str
    sha384: str | None  # None: the manifests name the object but record no sha384 to check it against
    size: int | None
    manifests: tuple[str, ...]


def expected_artifacts(manifests: list[ProcessedManifest]) -> dict[str, ExpectedArtifact]:
    """Object name -> what the manifests referencing it say it holds. Image-delivered manifests
    (docker://) expect nothing in the bucket."""
    grouped: dict[str, list[ProcessedManifest]] = defaultdict(list)
    for manifest in manifests:
        if manifest.bucket_object is not None:
            grouped[manifest.bucket_object].append(manifest)
    expected: dict[str, ExpectedArtifact] = {}
    for name, group in grouped.items():
        recorded = next((m for m in group if m.rootfs_sha384 is not None), group[0])
        size = recorded.exchange.get("rootfs-size")
        paths = tuple(sorted(m.relative for m in group))
        expected[name] = ExpectedArtifact(name, recorded.rootfs_sha384, size if isinstance(size, int) else None,
                                          paths)
    return expected


def audit_exchange_storage(scan: ManifestScan, bucket: Bucket, *, deep: bool) -> StorageAudit:
    audit = audit_storage(expected_artifacts(scan.manifests), bucket, deep=deep)
    audit.unreadable = list(scan.problems)
    return audit


def deletable_orphans(audit: StorageAudit) -> list[ObjectInfo]:
    """The orphans, only when every manifest was read; else UnreadableManifests, naming each file."""
    require_every_manifest_read(audit.unreadable)
    return audit.orphans


def require_every_manifest_read(problems: list[ManifestProblem]) -> None:
    """Before deleting any bucket object: an unreadable manifest might reference it."""
    if problems:
        shown = "; ".join(str(problem) for problem in problems)
        raise UnreadableManifests(f"refusing to delete any object: {len(problems)} manifest(s) could not be "
                                  f"read, and each might reference one ({shown})")


def audit_storage(expected: dict[str, ExpectedArtifact], bucket: Bucket, *, deep: bool) -> StorageAudit:
    audit = StorageAudit(bucket.uri, deep)
    present = {info.name: info for info in bucket.list()}
    for name, artifact in sorted(expected.items()):
        info = present.get(name)
        if info is None:
            audit.missing.append(MissingArtifact(name, artifact.manifests))
            continue
        audit.checked += 1
        problem = _artifact_problem(bucket, artifact, info, deep=deep)
        if problem is not None:
            audit.damaged.append(DamagedArtifact(name, artifact.manifests, problem))
    audit.orphans = [info for name, info in sorted(present.items()) if name not in expected]
    return audit


def delete_orphans(bucket: Bucket, orphans: list[ObjectInfo]) -> tuple[list[str], list[str]]:
    """Delete each orphan as it was audited; one replaced meanwhile is kept. Returns (deleted, kept)."""
    deleted: list[str] = []
    kept: list[str] = []
    for orphan in orphans:
        try:
            bucket.delete(orphan.name, generation=orphan.generation)
        except ObjectChanged:
            kept.append(orphan.name)
            continue
        deleted.append(orphan.name)
    return deleted, kept


def _artifact_problem(bucket: Bucket, artifact: ExpectedArtifact, info: ObjectInfo, *, deep: bool) -> str | None:
    if artifact.size is not None and info.size != artifact.size:
        return f"it has {info.size} bytes, the manifest says {artifact.size}"
    if artifact.sha384 is None:
        return None  # an old manifest with no sha384: present is all that can be checked
    if info.sha384 is not None and info.sha384 != artifact.sha384:
        return f"its recorded sha384 is {info.sha384}, the manifest says {artifact.sha384}"
    if deep:
        actual = bucket.content_sha384(info.name)
        if actual != artifact.sha384:
            return f"its content hashes to sha384:{actual}, the manifest says sha384:{artifact.sha384}"
    return None

