"""The git side of a process run: one commit per spec, the push, and undoing both.

The branch starts clean at `start`; every change this run makes is a commit on top of it, so
rolling back is a hard reset to `start` plus deleting the bucket objects the run created. Where each
manifest goes is placement.py's answer, asked again when the commits are replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import git as gitpython

from .. import __version__, git
from ..durable import write_atomically
from ..errors import ExchangeError
from ..manifests import (
    ExchangeRecord,
    ManifestProblem,
    ProcessedManifest,
    build_manifest,
    manifest_name,
    manifest_text,
    read_git_manifest,
)
from ..provenance.custody import PROCESS_TRAILER
from ..repository import MANIFESTS, SENTINEL, Exchange
from .artifacts import Artifact
from .placement import ManifestTrees, Placement, place_manifest

# CircleCI starts no pipeline for a push whose head commit says [skip ci] anywhere in its message: the
# bot's own commits must not start a full master pipeline again, while a contributor's next one does.
# The git trailer records that a process run made the commit (`exchange verify` names it: custody.py).
BOT_COMMIT_TRAILER = (f"\n\n[skip ci] manifest published by exchange process\n\n"
                      f"{PROCESS_TRAILER}: exchange-cli {__version__}")


@dataclass(frozen=True)
class ManifestCommit:
    commit: str
    manifest_path: str
    artifact: Artifact | None  # None for a commit an earlier run made (process/resume.py)
    message: str
    object_name: str | None  # the bucket object the manifest references; None for image-delivered gears


@dataclass
class PublishTransaction:
    exchange: Exchange
    remote: str
    branch: str
    start: str
    source_commit: str
    identity_env: dict[str, str]
    commits: list[ManifestCommit] = field(default_factory=list)
    replays: int = 0
    skipped: list[ManifestCommit] = field(default_factory=list)  # already on the remote when we replayed
    _remote_heads: list[str] | None = field(default=None, repr=False)  # fetched once, when placing

    @property
    def repo(self) -> gitpython.Repo:
        return self.exchange.repo

    def place(self, artifact: Artifact) -> Placement:
        """Where `artifact`'s manifest goes: against our branch and the remote's head (placement.py)."""
        job = artifact.job
        legacy = f"{MANIFESTS}/{job.location.org}/{manifest_name(job.location.artifact_base, artifact.rootfs_hash)}"
        ours = ProcessedManifest(Path(legacy), legacy, job.kind, job.spec, {"rootfs-hash": artifact.rootfs_hash})
        return place_manifest(ours, ManifestTrees(self.repo, ["HEAD", *self._fetched_remote_heads()]))

    def _fetched_remote_heads(self) -> list[str]:
        if self._remote_heads is None:  # git.RemoteUnreachable (one line) fails the run, which rolls back
            head = git.fetch_branch_if_any(self.repo, self.remote, self.branch)
            self._remote_heads = [head] if head else []
        return self._remote_heads

    def commit_manifest(self, artifact: Artifact, relative: str, invocation_schema: dict[str, Any],
                        extra: dict[str, Any] | None = None) -> ManifestCommit:
        """Commit `artifact`'s manifest at `relative` (its placement) with the sentinel."""
        job = artifact.job
        record = ExchangeRecord(
            git_commit=self.source_commit,
            rootfs_hash=artifact.rootfs_hash,
            rootfs_url=artifact.url,
            rootfs_size=artifact.size,
            image=job.image,
            image_digest_reference=artifact.image.pinned_reference,
            image_config_digest=artifact.image.config_digest,
            platform=str(artifact.image.platform),
            mirrored_image=artifact.mirrored_reference,
            skipped_checks=artifact.skipped_checks or None,
            sbom_url=artifact.sbom_url,
            sbom_sha256=artifact.sbom_sha256,
            sbom_packages=artifact.sbom_packages,
            sbom_os=artifact.sbom_os,
            squashfs_url=artifact.squashfs_url,
            squashfs_sha384=f"sha384:{artifact.squashfs_sha384}" if artifact.squashfs_sha384 else None,
            squashfs_size=artifact.squashfs_size,
            extra=extra or None,
        )
        write_atomically(self.exchange.root / relative,
                         manifest_text(build_manifest(job.kind, job.spec, record, invocation_schema)))
        write_atomically(self.exchange.sentinel_path, self.source_commit + "\n")
        message = job.commit_message + BOT_COMMIT_TRAILER
        commit = git.commit_paths(self.repo, [relative, SENTINEL], message, self.identity_env)
        made = ManifestCommit(commit, relative, artifact, message, artifact.object_name if artifact.in_bucket else None)
        self.commits.append(made)
        return made

    def push(self, *, retries: int, on_replayed: Callable[[list[ManifestCommit]], None] | None = None) -> None:
        """Push; on a non-fast-forward rejection, replay our commits on the new remote head and retry."""
        attempts_left = retries
        while True:
            try:
                git.push(self.repo, self.remote, self.branch)
                return
            except git.PushRejected as rejection:
                if not rejection.non_fast_forward or attempts_left <= 0:
                    raise
                attempts_left -= 1
                skipped = self.replay_on(git.fetch_branch(self.repo, self.remote, self.branch))
                self.skipped += skipped
                self.replays += 1
                if on_replayed is not None:
                    on_replayed(skipped)

    def replay_on(self, remote_head: str) -> list[ManifestCommit]:
        """Re-make our commits on `remote_head`; they only add manifests, so no export is needed.

        Each manifest is placed again against `remote_head` by its content (placement.py): one that the
        other run already published (the same version, spec and rootfs) is skipped, since its object is
        the same and their manifest references it; one whose place another version took moves to its
        version-qualified name, content unchanged; anything else stops the run (PlaceTaken). Returns the
        skipped ones.
        """
        ours, self.commits = self.commits, []
        git.reset_hard(self.repo, remote_head)
        sentinel = self._newest_sentinel(remote_head)
        trees = ManifestTrees(self.repo, [remote_head])
        skipped: list[ManifestCommit] = []
        for made in ours:
            blob = git.blob_at(self.repo, made.commit, made.manifest_path) if made.manifest_path else None
            if blob is None:  # a commit that added no manifest (an earlier run's, resume.py): nothing to redo
                skipped.append(made)
                continue
            placement = place_manifest(_as_placed(blob), trees)
            if placement.published:
                skipped.append(made)
                continue
            write_atomically(self.exchange.root / placement.path, blob.data_stream.read().decode("utf-8"))
            write_atomically(self.exchange.sentinel_path, sentinel + "\n")
            commit = git.commit_paths(self.repo, [placement.path, SENTINEL], made.message, self.identity_env)
            self.commits.append(ManifestCommit(commit, placement.path, made.artifact, made.message,
                                               made.object_name))
        return skipped

    def _newest_sentinel(self, remote_head: str) -> str:
        """Never move the sentinel backwards: keep the remote's when it already covers our commit."""
        try:
            theirs: str = self.repo.git.show(f"{remote_head}:{SENTINEL}").strip()
        except git.GitFailed:
            return self.source_commit
        if theirs and git.is_ancestor(self.repo, self.source_commit, theirs):
            return theirs
        return self.source_commit

    def is_published(self) -> bool:
        """Did our head reach the remote (asked after an interrupted push)?"""
        head = git.head_commit(self.repo)
        return bool(self.commits) and head == git.remote_branch_commit(self.repo, self.remote, self.branch)

    def reset(self) -> None:
        git.reset_hard(self.repo, self.start)
        self.commits = []


def _as_placed(blob: gitpython.Blob) -> ProcessedManifest:
    """Our manifest as placement reads it: at the old pipeline's path for it (its qualifier removed)."""
    read = read_git_manifest(blob)
    if isinstance(read, ManifestProblem):  # never for a manifest this tool wrote
        raise ExchangeError(f"cannot replay {read}")
    named = read.file_name
    if named is None:
        raise ExchangeError(f"cannot replay {blob.path}: not named <base>-<algo>-<hex>.json")
    legacy = str(PurePosixPath(blob.path).with_name(f"{named.object_stem}.json"))
    placed = read_git_manifest(blob, legacy)
    assert isinstance(placed, ProcessedManifest), "the same blob read without a problem above"
    return placed
