"""After the push: every object the pushed manifests reference is in the bucket, with its size and hash.

The lease keeps other exchange runs from deleting anything meanwhile, but not a run whose bucket does
not honour conditional writes, an older tool, or a person. So the pushed manifests are read back (at
the pushed commit, with the same reader as everything else) and each object they reference is looked
at; one that is missing is exported again from its image and uploaded (objects are content-addressed,
so a re-upload is always safe: the same name can only hold the same bytes). A missing signed envelope
is put back from the bytes the run made, which are the ones its manifest pins (attestation-sha256);
signing again would not give them. A missing SBOM is made again from the rootfs in the bucket (the
same rootfs gives the same bytes) and put back only if they are the ones its manifest pins (sbom-sha256);
a missing squashfs image likewise, from the tar stream inside that rootfs (squashfs-sha384).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import git as gitpython

from .. import git
from ..bounded import Bounded, rootfs_limit
from ..catalog.storage_audit import ExpectedArtifact
from ..conformance.check import open_source_image
from ..errors import ExchangeError
from ..export import export_image
from ..image.resolve import ExportOptions
from ..manifests import ManifestScan, ProcessedManifest, manifests_at_commit
from ..progress import Progress
from ..rootfs.squashfs import find_tar2sqfs, squashfs_of_tarball
from ..sbom.tarball import document_of_stored_rootfs
from ..storage.bucket import Bucket
from ..storage.lease import BucketLease, Confirming
from .artifacts import Artifact
from .references import artifacts_of, envelopes_of, stored_problem


class PublishedButIncomplete(ExchangeError):
    """The push landed, but an object its manifests reference is missing or wrong and could not be restored."""


def confirm_published(repo: gitpython.Repo, head: str, manifest_paths: Sequence[str], artifacts: Sequence[Artifact],
                      bucket: Bucket, export_options: ExportOptions, work_dir: Path, progress: Progress,
                      log: Callable[[str], None], kept: Mapping[str, bytes] | None = None) -> list[str]:
    """The objects restored; PublishedButIncomplete naming each problem left. `kept`: objects the run
    made whose exact bytes it still has (its signed envelopes), by name."""
    by_name = {artifact.object_name: artifact for artifact in artifacts}
    scan = manifests_at_commit(repo, head)  # read once: the artifacts and the envelopes come from the same manifests
    restored, problems = _confirm_envelopes(envelopes_of(scan, manifest_paths), bucket, kept or {}, log)
    for item in artifacts_of(scan, manifest_paths):
        if bucket.stat(item.object_name) is None:
            artifact = by_name.get(item.object_name)
            try:
                if artifact is not None:
                    _restore(artifact, bucket, export_options, work_dir, progress)
                else:  # a dead run's push (finish_unfinished): the manifest says where the rootfs comes from
                    _restore_from_manifest(scan, item, bucket, export_options, work_dir, progress)
            except ExchangeError as error:
                problems.append(f"{item.object_name} is missing and could not be restored: {error}")
                continue
            log(f"restored {item.object_name}: it was gone from the bucket after the push")
            restored.append(item.object_name)
        problem = stored_problem(bucket, item)
        if problem is not None:
            problems.append(problem)
    for name, (rootfs, sha384, size, pinned) in sboms_of(scan, manifest_paths).items():
        if bucket.stat(name) is None:
            try:
                _restore_sbom(bucket, name, rootfs, sha384, size, pinned)
            except ExchangeError as error:
                problems.append(f"{name} is missing and could not be restored: {error}")
                continue
            log(f"restored {name}: it was gone from the bucket after the push")
            restored.append(name)
    for name, manifest in squashfs_of(scan, manifest_paths).items():
        if bucket.stat(name) is None:
            try:
                _restore_squashfs(bucket, name, manifest, work_dir)
            except ExchangeError as error:
                problems.append(f"{name} is missing and could not be restored: {error}")
                continue
            log(f"restored {name}: it was gone from the bucket after the push")
            restored.append(name)
    if problems:
        raise PublishedButIncomplete(f"pushed {head[:12]}, but its manifests reference objects that are not right "
                                     "(run `exchange verify-storage`):\n  " + "\n  ".join(problems))
    return restored


def _restore(artifact: Artifact, bucket: Bucket, export_options: ExportOptions, work_dir: Path,
             progress: Progress) -> None:
    """Export the artifact's image again (the same bytes: the export is deterministic) and upload it."""
    image = artifact.image
    if not image.layers or not all(layer.tar_path.exists() for layer in image.layers):
        # A fan-in artifact carries no layers, and the cache may have dropped them: resolve by digest.
        image = open_source_image(image.pinned_reference or artifact.job.image, export_options, progress)
    temp = work_dir / f"restore-{artifact.object_name}"
    try:
        exported = export_image(image, temp, progress=progress, shown_as=artifact.job.image)
        if exported.sha384 != artifact.sha384:
            raise ExchangeError(f"exporting {artifact.job.image} again gives sha384 {exported.sha384}, "
                                f"not {artifact.sha384}")
        bucket.upload(artifact.object_name, temp, size=exported.size, sha384=exported.sha384)
    finally:
        temp.unlink(missing_ok=True)


def sboms_of(scan: ManifestScan, manifest_paths: Sequence[str]) -> dict[str, tuple[str, str, object, str | None]]:
    """SBOM object -> (its rootfs object, the rootfs's sha384, its size, the SBOM's pinned sha256), for these manifests."""
    ours = set(manifest_paths)
    return {m.sbom_object: (m.bucket_object, m.rootfs_sha384, m.exchange.get("rootfs-size"), m.sbom_sha256)
            for m in scan.manifests if m.relative in ours and m.sbom_object is not None
            and m.bucket_object is not None and m.rootfs_sha384 is not None}


def _restore_sbom(bucket: Bucket, name: str, rootfs: str, sha384: str, size: object, pinned: str | None) -> None:
    document = document_of_stored_rootfs(bucket, rootfs, sha384, size)
    if pinned is not None and hashlib.sha256(document).hexdigest() != pinned:
        raise ExchangeError(f"made again from {rootfs}, it hashes to sha256:{hashlib.sha256(document).hexdigest()}, "
                            f"not the {pinned} its manifest pins")
    bucket.upload_bytes(name, document)


def squashfs_of(scan: ManifestScan, manifest_paths: Sequence[str]) -> dict[str, ProcessedManifest]:
    """Squashfs image object -> the manifest naming it, for these manifests (those with a rootfs to make it from)."""
    ours = set(manifest_paths)
    return {m.squashfs_object: m for m in scan.manifests if m.relative in ours and m.squashfs_object is not None
            and m.bucket_object is not None and m.rootfs_sha384 is not None}


def _restore_squashfs(bucket: Bucket, name: str, manifest: ProcessedManifest, work_dir: Path) -> None:
    """Make the image again from the rootfs in the bucket: its gzip holds the very tar stream the image was
    written from, so tar2sqfs writes the same bytes. Uploaded only if they are the ones the manifest pins."""
    rootfs, sha384 = manifest.bucket_object, manifest.rootfs_sha384
    assert rootfs is not None and sha384 is not None
    pinned = manifest.exchange.get("squashfs-sha384")
    temp = work_dir / f"restore-{name}"
    try:
        with bucket.open_read(rootfs) as raw:
            image = squashfs_of_tarball(Bounded(raw, rootfs_limit(manifest.exchange.get("rootfs-size")),
                                                f"{bucket.uri}/{rootfs}"),
                                        # any version may try: only bytes equal to the pinned ones are uploaded
                                        find_tar2sqfs(allow_untested=True), temp)
        if image.tarball_sha384 != sha384:
            raise ExchangeError(f"{bucket.uri}/{rootfs} hashes to sha384:{image.tarball_sha384}, not the "
                                f"sha384:{sha384} its manifest pins")
        if f"sha384:{image.sha384}" != pinned:
            raise ExchangeError(f"made again from {rootfs}, it hashes to sha384:{image.sha384}, not the {pinned} "
                                "its manifest pins (another tar2sqfs version?)")
        bucket.upload(name, temp, size=image.size, sha384=image.sha384)
    finally:
        temp.unlink(missing_ok=True)


def _confirm_envelopes(envelopes: Mapping[str, str | None], bucket: Bucket, kept: Mapping[str, bytes],
                       log: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """(restored, problems) for the signed envelopes (name -> pinned sha256) the manifests reference."""
    restored: list[str] = []
    problems: list[str] = []
    for name, pinned in envelopes.items():
        if bucket.stat(name) is not None:
            continue
        try:
            _restore_kept(bucket, name, pinned, kept.get(name))
        except ExchangeError as error:
            problems.append(f"{name} is missing and could not be restored: {error}")
            continue
        log(f"restored {name}: it was gone from the bucket after the push")
        restored.append(name)
    return restored, problems


def _restore_kept(bucket: Bucket, name: str, pinned: str | None, content: bytes | None) -> None:
    """Upload the exact bytes the run made for `name`, when they are what the manifest pins."""
    if content is None:
        raise ExchangeError("this run did not make it, and a signature made again would not match the "
                            "attestation-sha256 its manifest pins")
    if pinned is not None and hashlib.sha256(content).hexdigest() != pinned:
        raise ExchangeError(f"the envelope this run made hashes to sha256 {hashlib.sha256(content).hexdigest()}, "
                            f"not the {pinned} its manifest pins")
    bucket.upload_bytes(name, content)


def _restore_from_manifest(scan: ManifestScan, item: ExpectedArtifact, bucket: Bucket,
                           export_options: ExportOptions, work_dir: Path, progress: Progress) -> None:
    """Export the image a manifest names again; only bytes with the manifest's sha384 are uploaded."""
    (manifest,) = [manifest for manifest in scan.manifests if manifest.relative == item.manifests[0]]
    block = manifest.exchange
    references = [ref for key in ("image-digest-reference", "image") if isinstance(ref := block.get(key), str)]
    if item.sha384 is None or not references:
        raise ExchangeError(f"{item.manifests[0]} names no sha384 or no image to export it from")
    temp = work_dir / f"restore-{item.object_name}"
    reasons = []
    try:
        for reference in dict.fromkeys(references):
            try:
                exported = export_image(open_source_image(reference, export_options, progress), temp,
                                        progress=progress, shown_as=reference)
            except ExchangeError as error:
                reasons.append(str(error))
                continue
            if exported.sha384 == item.sha384:
                bucket.upload(item.object_name, temp, size=exported.size, sha384=exported.sha384)
                return
            reasons.append(f"exporting {reference} again gives sha384 {exported.sha384}, not {item.sha384}")
    finally:
        temp.unlink(missing_ok=True)
    raise ExchangeError("; ".join(reasons))


def finish_unfinished(repo: gitpython.Repo, remote: str, branch: str, lease: BucketLease, pending: Confirming,
                      bucket: Bucket, export_options: ExportOptions, work_dir: Path, progress: Progress,
                      log: Callable[[str], None]) -> None:
    """The check after a push that a dead run left unfinished (its lease, which we broke, says which
    manifests): recorded in our own lease while we work on it, so that if we die too, the next run finishes it."""
    lease.acquire()
    lease.confirming(pending)
    head = git.fetch_branch_if_any(repo, remote, branch)
    if head is not None:  # the manifests as the remote has them: a replay may have moved them, a lost push not made them
        log(f"finishing the check a dead run left when it pushed its manifests: the objects of those of "
            f"{len(pending.manifests)} manifest(s) that {remote} {branch} has")
        confirm_published(repo, head, pending.manifests, [], bucket, export_options, work_dir, progress, log)
    lease.confirming(None)
