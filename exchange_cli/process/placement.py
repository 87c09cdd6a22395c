"""Where a version's manifest goes, so that no version ever replaces another's manifest.

A manifest's path holds the rootfs hash, not the version (the old pipeline's layout, which existing
exchanges and their readers use): two versions of one entry whose images flatten to a byte-identical
rootfs (a spec-only change over the same image) would share one path. So a version takes the old
name when it is free, or when it already holds this very publication (another run published it); when
another version holds it, the version takes the version-qualified name
``<org>-<stem>@<version>-<algo>-<hex>.json`` (manifests.qualified_manifest_path). The same version
with another spec or rootfs anywhere among the entry's manifests (two runs racing on one version, the
second after its image's tag was pushed again) is `PlaceTaken`: the run stops and rolls back, nothing is
overwritten, and a version never has two publications.

The commit asks against our branch and the remote's head (fetched under the bucket lease, so another
run's manifests are seen even when this checkout predates them); a replay asks again against the new
remote head, comparing content, never trusting that one path means one publication.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import git as gitpython

from .. import git
from ..errors import ExchangeError
from ..manifests import (
    ManifestFileName,
    ManifestProblem,
    ProcessedManifest,
    qualified_manifest_path,
    read_git_manifest,
)
from ..quoting import printable

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
    """What some commits (our branch, the remote's head) hold beside a manifest of ours."""

    repo: gitpython.Repo
    commits: Sequence[str]

    def of_the_same_entry(self, ours: ProcessedManifest) -> list[Held]:
        """Every file beside `ours` named for the same entry (`<base>-…` or `<base>@<version>-…`), read, in each
        commit: the only places this tool puts a publication of its version, its candidate places among them.
        The other files are not read."""
        named = ours.file_name
        assert named is not None, "our manifest is named <base>-<algo>-<hex>.json (transaction.py)"
        directory = str(PurePosixPath(ours.relative).parent)
        held = []
        for commit in self.commits:
            for blob in git.blobs_at(self.repo, commit, directory):
                theirs = ManifestFileName.parse(PurePosixPath(blob.path).name, ours.version)
                if theirs is not None and theirs.base == named.base:
                    held.append(read_git_manifest(blob))
        return held


def same_publication(theirs: Held, ours: ProcessedManifest) -> bool:
    """One version of one gear, from the same spec, with the same rootfs: the same thing published (the
    commit it was processed at, the URL and the signature may differ between runs)."""
    return (isinstance(theirs, ProcessedManifest) and theirs.kind is ours.kind and theirs.key == ours.key
            and theirs.spec == ours.spec and theirs.rootfs_hash == ours.rootfs_hash)


def place_manifest(ours: ProcessedManifest, trees: ManifestTrees) -> Placement:
    """`ours.relative` is the old pipeline's path for it; the place it may take, or PlaceTaken."""
    version = ours.version
    entry = trees.of_the_same_entry(ours)
    _refuse_another_publication(ours, entry)
    candidates = [ours.relative] + ([qualified_manifest_path(ours.relative, version)] if version else [])
    for path in candidates:
        held, qualified = [theirs for theirs in entry if _path_of(theirs) == path], path != ours.relative
        if not held:
            return Placement(path, published=False, qualified=qualified)
        if all(same_publication(theirs, ours) for theirs in held):
            return Placement(path, published=True, qualified=qualified)
    raise PlaceTaken(f"no place for the manifest of {ours.key or ours.relative}: {', '.join(candidates)} hold "
                     "other manifests; nothing was overwritten")


def _path_of(held: Held) -> str:
    return held.relative if isinstance(held, ProcessedManifest) else held.path


def _refuse_another_publication(ours: ProcessedManifest, entry: Sequence[Held]) -> None:
    """PlaceTaken when the entry's manifests already hold our version with another spec or rootfs."""
    if ours.key is None:
        return
    for theirs in entry:
        if isinstance(theirs, ProcessedManifest) and theirs.key == ours.key and not same_publication(theirs, ours):
            differs = ("another spec" if theirs.spec != ours.spec else
                       "another rootfs (was its image's tag pushed again?)")  # the path names their hash
            # The path is the remote's text (a directory anyone who can push may name): escaped, on our line.
            raise PlaceTaken(f"{printable(theirs.relative)} already holds {ours.key} with {differs}: another run "
                             "published this version meanwhile; nothing was overwritten (a version is published once: "
                             "give the spec a new version)")
