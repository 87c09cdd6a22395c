"""The bucket objects that the manifests at one commit reference: what no rollback may ever delete.

The manifests are read with the same reader as every other command (manifests.manifests_at_commit:
every ``*.json`` under ``manifests/`` at any depth, straight from the commit's tree) and grouped as
verify-storage groups them (catalog.storage_audit.expected_artifacts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import git as gitpython

from .. import git
from ..catalog.storage_audit import ExpectedArtifact, expected_artifacts
from ..errors import Category, ExchangeError, UsageError, redact
from ..manifests import ManifestProblem, ManifestScan, manifests_at_commit
from ..storage.bucket import Bucket


class RemoteUnreadable(ExchangeError):
    """The remote branch's manifests cannot be read: whatever they reference is unknown, so nothing may go."""

    category = Category.ENVIRONMENT


@dataclass(frozen=True)
class References:
    commit: str
    expected: dict[str, ExpectedArtifact]  # object name -> what the manifests say it holds
    unreadable: list[ManifestProblem]  # files under manifests/ that could not be read
    attestations: frozenset[str] = frozenset()  # the signed envelopes (attestation-url) they reference
    sboms: frozenset[str] = frozenset()  # the SBOMs (sbom-url) they reference
    squashfs: frozenset[str] = frozenset()  # the squashfs images (squashfs-url) they reference

    @property
    def names(self) -> frozenset[str]:
        """Every object the manifests reference: artifacts, their envelopes, SBOMs and squashfs images."""
        return frozenset(self.expected) | self.attestations | self.sboms | self.squashfs

    def keeps(self, object_name: str) -> bool:
        """Referenced by a manifest, or possibly by one that cannot be read: when in doubt an object is
        kept (a leftover orphan is reported by verify-storage; a lost rootfs cannot be undone)."""
        return object_name in self.names or bool(self.unreadable)


def referenced_objects(repo: gitpython.Repo, commit: str) -> References:
    """The objects that the manifests at `commit` reference."""
    scan = manifests_at_commit(repo, commit)
    attestations = frozenset(m.attestation_object for m in scan.manifests if m.attestation_object is not None)
    sboms = frozenset(m.sbom_object for m in scan.manifests if m.sbom_object is not None)
    images = frozenset(m.squashfs_object for m in scan.manifests if m.squashfs_object is not None)
    return References(commit, expected_artifacts(scan.manifests), list(scan.problems), attestations, sboms, images)


def references_at_remote(repo: gitpython.Repo, remote: str, branch: str) -> References | None:
    """What the manifests at `remote` `branch` reference, fetched now; None when the remote has no such
    branch (then no manifest there references anything). RemoteUnreadable when it cannot be asked."""
    try:
        head = git.fetch_branch_if_any(repo, remote, branch)
        return referenced_objects(repo, head) if head else None
    except (git.GitFailed, OSError, ExchangeError) as error:
        raise RemoteUnreadable(f"the manifests at {remote} {branch} cannot be read ({_last_line(error)})") from None


def published_references(repo: gitpython.Repo, remote: str) -> References | None:
    """For a clean-up outside a run (verify-storage --delete-orphans): what the manifests at `remote`'s copy
    of the checked-out branch reference. A checkout may be behind its remote (not pulled since CI last
    published), so its own manifests are not enough. None when the repository has no remote at all."""
    if not repo.remotes and not git.has_remote(repo, remote):
        return None
    if not git.has_remote(repo, remote):
        raise UsageError(f"no git remote {remote!r} (use --remote or GIT_REMOTE): the manifests published there "
                         "must be read before anything is deleted")
    return references_at_remote(repo, remote, git.current_branch(repo))


def _last_line(error: BaseException) -> str:
    if isinstance(error, git.GitFailed):
        return redact(git.failure_reason(error))
    text = str(error).strip()
    return redact(text.splitlines()[-1] if text else type(error).__name__)


def referenced_by(repo: gitpython.Repo, commit: str, manifest_paths: list[str]) -> list[ExpectedArtifact]:
    """The objects that these manifests (repository paths) at `commit` reference."""
    return artifacts_of(manifests_at_commit(repo, commit), manifest_paths)


def artifacts_of(scan: ManifestScan, manifest_paths: Iterable[str]) -> list[ExpectedArtifact]:
    """The artifacts that these manifests of `scan` reference."""
    ours = set(manifest_paths)
    return [item for item in expected_artifacts(scan.manifests).values() if ours & set(item.manifests)]


def envelopes_of(scan: ManifestScan, manifest_paths: Iterable[str]) -> dict[str, str | None]:
    """The signed envelopes that these manifests of `scan` reference: name -> the sha256 hex they pin."""
    ours = set(manifest_paths)
    return {manifest.attestation_object: manifest.attestation_sha256 for manifest in scan.manifests
            if manifest.relative in ours and manifest.attestation_object is not None}


def stored_problem(bucket: Bucket, item: ExpectedArtifact) -> str | None:
    """None when the object is in the bucket with the size and sha384 its manifests give; else what is wrong."""
    # An old manifest that records no sha384 (or size): present with what it records is all we can check.
    found = bucket.mismatch(item.object_name, size=item.size, sha384=item.sha384)
    return None if found is None else found.describe(item.object_name, "its manifest")
