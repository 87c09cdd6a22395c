"""Undo a run: its commits, its bucket objects (never one that a pushed manifest references), its mirrored tags.

Before deleting anything, the remote branch is fetched and every object its manifests reference is
kept: another run may have found our object and pushed a manifest for it while our push failed. When
the remote cannot be read, nothing is deleted (an orphan can be cleaned later; a lost rootfs cannot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import git as gitpython

from ..errors import ExchangeError
from ..storage.bucket import Bucket
from .ledger import CreatedObjects, RollbackResult
from .references import RemoteUnreadable, references_at_remote
from .transaction import PublishTransaction

if TYPE_CHECKING:
    from .delivery.stage import Delivery  # a run's mirrored tags: a resume's clean-up has none, and loads none of it


def undo(ledger: CreatedObjects, bucket: Bucket, repo: gitpython.Repo, remote: str, branch: str, delivery: Delivery,
         transaction: PublishTransaction | None) -> RollbackResult:
    """Everything this run did, in order: its commits (`transaction`; None for a shard, which makes none),
    the objects it created that no manifest at `remote` `branch` references, the tags it mirrored."""
    reset = _reset(transaction) if transaction is not None else RollbackResult()
    deleted = delete_unreferenced(ledger, bucket, repo, remote, branch)
    return deleted.plus(reset).plus(delivery.rollback())


def _reset(transaction: PublishTransaction) -> RollbackResult:
    """The branch back where the run started. A failure is said; the objects are still undone, and the next
    run finds the commits (resume.py)."""
    try:
        transaction.reset()
    except ExchangeError as error:
        return RollbackResult(failed={"(the branch)": f"could not be reset to {transaction.start[:12]}: {error}"})
    return RollbackResult()


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
