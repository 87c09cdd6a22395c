"""`exchange verify-storage`: the bucket against the manifests. Finds problems; prints nothing.

Every manifest with a sha384 rootfs-hash expects one object (named by its rootfs URL). An expected
object that is absent is *missing*; one whose size, recorded hash or (with deep) content differs from
the manifest is *damaged*; an object no manifest expects is an *orphan*.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..manifests import ProcessedManifest
from ..storage.bucket import Bucket, ObjectChanged, ObjectInfo
from .model import artifact_object_name, rootfs_sha384


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

    @property
    def ok(self) -> bool:
        return not (self.missing or self.damaged or self.orphans)


@dataclass(frozen=True)
class ExpectedArtifact:
    object_name: str
    sha384: str
    size: int | None
    manifests: tuple[str, ...]


def expected_artifacts(manifests: list[ProcessedManifest], root: Path) -> dict[str, ExpectedArtifact]:
    """Object name -> what the manifests referencing it say it holds. Manifests without a sha384
    rootfs-hash expect nothing in the bucket."""
    grouped: dict[str, list[ProcessedManifest]] = defaultdict(list)
    for manifest in manifests:
        if rootfs_sha384(manifest) is not None:
            grouped[artifact_object_name(manifest)].append(manifest)
    expected: dict[str, ExpectedArtifact] = {}
    for name, group in grouped.items():
        size = group[0].exchange.get("rootfs-size")
        paths = tuple(sorted(_shown(m.path, root) for m in group))
        expected[name] = ExpectedArtifact(name, rootfs_sha384(group[0]) or "", size if isinstance(size, int) else None,
                                          paths)
    return expected


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
    if info.sha384 is not None and info.sha384 != artifact.sha384:
        return f"its recorded sha384 is {info.sha384}, the manifest says {artifact.sha384}"
    if deep:
        actual = bucket.content_sha384(info.name)
        if actual != artifact.sha384:
            return f"its content hashes to sha384:{actual}, the manifest says sha384:{artifact.sha384}"
    return None


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
