"""Undo a run's bucket objects, never one that a pushed manifest references.

Before deleting anything, the remote branch is fetched and every object its manifests reference is
kept: another run may have found our object and pushed a manifest for it while our push failed. When
the remote cannot be read, nothing is deleted (an orphan can be cleaned later; a lost rootfs cannot).
"""

from __future__ import annotations

import git as gitpython

from ..storage.bucket import Bucket
from .ledger import CreatedObjects, RollbackResult
from .references import RemoteUnreadable, references_at_remote


def delete_unreferenced(ledger: CreatedObjects, bucket: Bucket, repo: gitpython.Repo, remote: str,
                        branch: str) -> RollbackResult:
    if not branch:
        return ledger.delete_all(bucket, keeps=lambda name: "kept: no branch checked out, so no remote manifests to read")
    try:
        references = references_at_remote(repo, remote, branch)
    except RemoteUnreadable as error:
        reason = f"kept: {error}"
        return ledger.delete_all(bucket, keeps=lambda name: reason)
    if references is None:
        return ledger.delete_all(bucket)  # the remote has no such branch: no manifest references anything
    reason = (f"kept: a manifest at {remote} {branch} ({references.commit[:12]}) references it"
              + (" (or may: some cannot be read)" if references.unreadable else ""))
    return ledger.delete_all(bucket, keeps=lambda name: reason if references.keeps(name) else None)

