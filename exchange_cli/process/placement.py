"""Where a version's manifest goes, so that no version ever replaces another's manifest.

A manifest's path holds the rootfs hash, not the version (the old pipeline's layout, which existing
exchanges and their readers use): two versions of one entry whose images flatten to a byte-identical
rootfs (a spec-only change over the same image) would share one path. So a version takes the old
name when it is free, or when it already holds this very publication (another run published it); when
another version holds it, the version takes the version-qualified name
``<org>-<stem>@<version>-<algo>-<hex>.json`` (manifests.qualified_manifest_path). The same version
with another spec or rootfs at its place (two runs racing on one version) is `PlaceTaken`: the run
stops and rolls back, nothing is overwritten.

The commit asks against our branch and the remote's head (fetched under the bucket lease, so another
run's manifests are seen even when this checkout predates them); a replay asks again against the new
remote head, comparing content, never trusting that one path means one publication.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import git as gitpython

from .. import git
from ..errors import ExchangeError
from ..manifests import ManifestProblem, ProcessedManifest, qualified_manifest_path, read_git_manifest

Held = ProcessedManifest | ManifestProblem


class PlaceTaken(ExchangeError):
    """The manifest's place holds something else that must not be replaced."""


@dataclass(frozen=True)
class Placement:
    path: str  # repository-relative: manifests/<org>/…
    published: bool  # this very publication is there already (another run made it)
    qualified: bool = False  # another version holds the old name: this is the version-qualified one


@dataclass(frozen=True)
class ManifestTrees:
    """What some commits (our branch, the remote's head) hold at a path."""

    repo: gitpython.Repo
    commits: Sequence[str]

    def held_at(self, path: str) -> list[Held]:
        blobs = (git.blob_at(self.repo, commit, path) for commit in self.commits)
        return [read_git_manifest(blob) for blob in blobs if blob is not None]


def same_publication(theirs: Held, ours: ProcessedManifest) -> bool:
    """One version of one gear, from the same spec, with the same rootfs: the same thing published (the
    commit it was processed at, the URL and the signature may differ between runs)."""
    return (isinstance(theirs, ProcessedManifest) and theirs.kind is ours.kind and theirs.key == ours.key
            and theirs.spec == ours.spec and theirs.rootfs_hash == ours.rootfs_hash)


def place_manifest(ours: ProcessedManifest, trees: ManifestTrees) -> Placement:
    """`ours.relative` is the old pipeline's path for it; the place it may take, or PlaceTaken."""
    version = ours.version
    candidates = [ours.relative] + ([qualified_manifest_path(ours.relative, version)] if version else [])
    for path in candidates:
        held, qualified = trees.held_at(path), path != ours.relative
        if not held:
            return Placement(path, published=False, qualified=qualified)
        if all(same_publication(theirs, ours) for theirs in held):
            return Placement(path, published=True, qualified=qualified)
        rival = next((theirs for theirs in held if isinstance(theirs, ProcessedManifest) and theirs.key == ours.key),
                     None)
        if rival is not None:
            differs = "spec" if rival.spec != ours.spec else "rootfs"
            raise PlaceTaken(f"{path} already holds {ours.key} with another {differs}: another run published "
                             "this version meanwhile; nothing was overwritten (a version is published once: "
                             "give the spec a new version)")
    raise PlaceTaken(f"no place for the manifest of {ours.key or ours.relative}: {', '.join(candidates)} hold "
                     "other manifests; nothing was overwritten")

