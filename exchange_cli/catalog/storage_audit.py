"""`exchange verify-storage`: the bucket against the manifests. Finds problems; prints nothing.

Every manifest that names a bucket object (its rootfs URL's last segment, or ``<file stem>.tgz`` for a
sha384 rootfs-hash without URL) expects that object. An expected object that is absent is *missing*;
one whose size, recorded hash or (with deep) content differs from the manifest is *damaged*; an object
no manifest expects is an *orphan*. A file under manifests/ that cannot be read might reference any
object: then nothing is an orphan for certain, and `deletable_orphans` refuses.

A signed manifest also expects its envelope (attestation-url's last segment: `<object>.intoto.jsonl`,
or `<manifest stem>.tgz.intoto.jsonl` for a version sharing its rootfs with another, whose manifest
references the same object);
with deep, the envelope is read and checked as `exchange verify` does (its sha256 against the manifest,
the signature against the exchange's keys, its subject and provenance against the manifest), and
manifests without an envelope are listed as *unsigned* (reported; not a failure: older exchanges
published unsigned).

A manifest with an SBOM (sbom-url's last segment: `<object>.sbom.json`) expects it too; with deep, its
sha256 is checked against sbom-sha256, and a signed manifest's envelope must hold the SBOM's statement.

A manifest with a squashfs image (squashfs-url) expects it like its rootfs: its size against
squashfs-size and, with deep, its content against squashfs-sha384.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..bounded import read_at_most
from ..errors import ExchangeError
from ..manifests import ManifestProblem, ManifestScan, ProcessedManifest
from ..provenance.keys import PublicKey
from ..storage.bucket import Bucket, Hashing, ObjectChanged, ObjectInfo, ObjectNotFound


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
    envelopes_checked: int = 0
    unsigned: list[str] = field(default_factory=list)  # with deep: manifests without an envelope

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
    expected: dict[str, ExpectedArtifact] = {}
    for name, group in _by_object(manifests, lambda m: m.bucket_object).items():
        recorded = next((m for m in group if m.rootfs_sha384 is not None), group[0])
        expected[name] = _expected(name, group, recorded.rootfs_sha384, recorded.exchange.get("rootfs-size"))
    return expected


def expected_squashfs(manifests: list[ProcessedManifest]) -> dict[str, ExpectedArtifact]:
    """The squashfs images the manifests name (squashfs-url), checked like a rootfs: present, of the
    recorded size and, with deep, of the recorded sha384 (squashfs-sha384)."""
    expected: dict[str, ExpectedArtifact] = {}
    for name, group in _by_object(manifests, lambda m: m.squashfs_object).items():
        digest = group[0].exchange.get("squashfs-sha384")
        sha384 = digest.lower().removeprefix("sha384:") if isinstance(digest, str) else None
        expected[name] = _expected(name, group, sha384, group[0].exchange.get("squashfs-size"))
    return expected


def _by_object(manifests: list[ProcessedManifest],
               object_of: Callable[[ProcessedManifest], str | None]) -> dict[str, list[ProcessedManifest]]:
    grouped: dict[str, list[ProcessedManifest]] = defaultdict(list)
    for manifest in manifests:
        if (name := object_of(manifest)) is not None:
            grouped[name].append(manifest)
    return grouped


def _expected(name: str, group: list[ProcessedManifest], sha384: str | None, size: object) -> ExpectedArtifact:
    return ExpectedArtifact(name, sha384, size if isinstance(size, int) else None,
                            tuple(sorted(m.relative for m in group)))


def audit_exchange_storage(scan: ManifestScan, bucket: Bucket, *, deep: bool,
                           keys: Sequence[PublicKey] = (), workers: int = 1) -> StorageAudit:
    """`keys`: the exchange's public keys (.exchange/keys/), which deep envelope checks verify with;
    `workers` objects checked at once."""
    envelopes = {m.attestation_object: m for m in scan.manifests if m.attestation_object is not None}
    sboms = {m.sbom_object: m for m in scan.manifests if m.sbom_object is not None}
    audit = audit_storage(expected_artifacts(scan.manifests) | expected_squashfs(scan.manifests), bucket, deep=deep,
                          also_expected=set(envelopes) | set(sboms), workers=workers)
    audit.unreadable = list(scan.problems)
    present = {info.name for info in bucket.list()} if envelopes or sboms else set()
    for name, manifest in sorted(sboms.items()):
        if name not in present:
            audit.missing.append(MissingArtifact(name, (manifest.relative,)))
        elif deep and (problem := _sbom_problem(bucket, name, manifest)) is not None:
            audit.damaged.append(DamagedArtifact(name, (manifest.relative,), problem))
    for name, manifest in sorted(envelopes.items()):
        if name not in present:
            audit.missing.append(MissingArtifact(name, (manifest.relative,)))
            continue
        audit.envelopes_checked += 1
        problem = _envelope_problem(bucket, name, manifest, list(keys)) if deep else None
        if problem is not None:
            audit.damaged.append(DamagedArtifact(name, (manifest.relative,), problem))
    if deep:
        audit.unsigned = sorted(m.relative for m in scan.manifests if m.attestation_object is None)
    return audit


def keep_referenced_elsewhere(audit: StorageAudit, expected: Collection[str],
                              unreadable: list[ManifestProblem]) -> list[str]:
    """Other manifests (the remote's, which a checkout may be behind) reference `expected`: those objects are
    not orphans, and their unreadable files are the audit's too. The names taken off the orphans."""
    kept = [orphan.name for orphan in audit.orphans if orphan.name in expected]
    audit.orphans = [orphan for orphan in audit.orphans if orphan.name not in expected]
    audit.unreadable += [problem for problem in unreadable if problem not in audit.unreadable]
    return kept


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


def audit_storage(expected: dict[str, ExpectedArtifact], bucket: Bucket, *, deep: bool,
                  also_expected: set[str] = frozenset(), workers: int = 1) -> StorageAudit:  # type: ignore[assignment]
    """`also_expected`: objects checked elsewhere (envelopes) that are not orphans either; `workers`
    objects checked at once (with `deep`, each is downloaded and hashed)."""
    audit = StorageAudit(bucket.uri, deep)
    present = {info.name: info for info in bucket.list()}
    found = []
    for name, artifact in sorted(expected.items()):
        info = present.get(name)
        if info is None:
            audit.missing.append(MissingArtifact(name, artifact.manifests))
        else:
            found.append((name, artifact, info))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify-storage") as pool:
        problems = pool.map(lambda item: _artifact_problem(bucket, item[1], item[2], deep=deep), found)
        for (name, artifact, _), problem in zip(found, problems, strict=True):
            audit.checked += 1
            if problem is not None:
                audit.damaged.append(DamagedArtifact(name, artifact.manifests, problem))
    audit.orphans = [info for name, info in sorted(present.items()) if name not in expected and name not in also_expected]
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
    # An old manifest with no sha384: present (with its size) is all that can be checked.
    found = bucket.mismatch(info.name, size=artifact.size, sha384=artifact.sha384, info=info,
                            hashing=Hashing.ALWAYS if deep else Hashing.NEVER)
    return None if found is None else found.describe("it", "the manifest")



def _envelope_problem(bucket: Bucket, name: str, manifest: ProcessedManifest, keys: list[PublicKey]) -> str | None:
    """What `exchange verify` would say of the envelope, given an artifact that matches its manifest."""
    from ..provenance.verify import MAX_ENVELOPE_BYTES, sbom_hash_check, verify_envelope, view_of

    if not keys:
        return "no public key in .exchange/keys/ to verify its signature with"
    with bucket.open_read(name) as stream:
        content = read_at_most(stream, MAX_ENVELOPE_BYTES)
    if content is None:
        return f"its envelope is more than {MAX_ENVELOPE_BYTES:,} bytes, the most an envelope may hold"
    algorithm, _, hex_digest = (manifest.rootfs_hash or "").partition(":")
    sbom = _read_sbom(bucket, manifest)
    if sbom is not None and not sbom_hash_check(view_of(manifest), sbom)[0]:
        sbom = None  # reported as the SBOM's own damage: the envelope is judged on the rest
    result = verify_envelope(view_of(manifest), content, {algorithm.lower(): hex_digest.lower()}, keys, sbom)
    failure = result.failure
    return None if failure is None else f"its envelope fails the {failure.name} check: {failure.detail}"


def _read_sbom(bucket: Bucket, manifest: ProcessedManifest) -> bytes | None:
    """The SBOM the manifest names, as the bucket holds it; None when it names none or it is missing
    (reported as missing on its own)."""
    from ..provenance.verify import MAX_SBOM_BYTES

    if manifest.sbom_object is None:
        return None
    try:
        with bucket.open_read(manifest.sbom_object) as stream:
            return stream.read(MAX_SBOM_BYTES + 1)
    except ObjectNotFound:
        return None


def _sbom_problem(bucket: Bucket, name: str, manifest: ProcessedManifest) -> str | None:
    from ..provenance.verify import sbom_hash_check, view_of

    content = _read_sbom(bucket, manifest)
    if content is None:
        return "it is not in the bucket"
    ok, detail = sbom_hash_check(view_of(manifest), content)
    return None if ok else detail
