"""Stage 4, publish: one commit per artifact's manifest, then the push (a failure is undone by rollback.py).

Extension point: a `PublishHook` is called for each artifact before its manifest is written (it may
create bucket objects beside the artifact, recorded in the run's ledger so a failed run deletes them
with the artifact, and it returns fields for the manifest's "exchange" block), and once after the
push is confirmed (work that must never roll back a published run, such as publishing a catalog).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import git
from ..invocation import derive_invocation_schema
from ..logs import logger
from ..storage.bucket import Bucket
from .artifacts import Artifact
from .ledger import CreatedObjects, RollbackResult
from .transaction import ManifestCommit, PublishTransaction

LOG = logger("process")

Log = Callable[[str], None]


@dataclass
class Published:
    """What reached the remote: handed to the hooks after the push."""

    commits: list[ManifestCommit]
    head: str
    replays: int


class PublishHook(Protocol):
    def manifest_fields(self, artifact: Artifact, manifest_path: str, ledger: CreatedObjects) -> dict[str, Any]:
        """Before `artifact`'s manifest is committed at `manifest_path`: extra "exchange" fields (objects
        it creates go in `ledger`)."""
        ...

    def after_push(self, published: Published) -> None:
        """Once the push is confirmed. A failure is reported by the hook itself; it never rolls anything back."""
        ...

    def restorable(self) -> Mapping[str, bytes]:
        """The bucket objects this run's manifests reference through the hook's fields, by name, with the
        exact bytes: if one is gone after the push, the after-push check puts those bytes back."""
        ...


@dataclass
class Publisher:
    transaction: PublishTransaction
    bucket: Bucket
    log: Log
    retries: int = 0
    hooks: Sequence[PublishHook] = field(default_factory=tuple)

    def restorable(self) -> dict[str, bytes]:
        return {name: content for hook in self.hooks for name, content in hook.restorable().items()}

    def commit(self, artifacts: Sequence[Artifact], ledger: CreatedObjects) -> None:
        for artifact in artifacts:
            placement = self.transaction.place(artifact)
            if placement.qualified:
                self.log(f"{artifact.job.title}: another version's manifest names the same rootfs; "
                         f"this one is {placement.path}")
            extra: dict[str, Any] = {}
            for hook in self.hooks:
                extra.update(hook.manifest_fields(artifact, placement.path, ledger))
            schema = derive_invocation_schema(artifact.job.spec, artifact.job.kind)
            made = self.transaction.commit_manifest(artifact, placement.path, schema, extra)
            self.log(f"committed {made.commit[:12]} {artifact.job.commit_message}")

    def push(self, ledger: CreatedObjects) -> Published | None:
        """None when there is nothing to push (a finalize step over shards that found nothing to do)."""
        transaction = self.transaction
        if not transaction.commits:
            return None
        self.log(f"pushing {len(transaction.commits)} commit(s) to {transaction.remote} {transaction.branch}")
        transaction.push(retries=self.retries, on_replayed=lambda skipped: self._forget(skipped, ledger))
        # Every commit may have been skipped while replaying (another run pushed the same manifests).
        return Published(list(transaction.commits), git.head_commit(transaction.repo) or transaction.start,
                         transaction.replays)

    def after_push(self, published: Published) -> None:
        """Called by the orchestrator once the run's work is published and nothing can roll it back."""
        for hook in self.hooks:
            hook.after_push(published)

    def is_published(self) -> bool:
        return bool(self.transaction.commits) and self.transaction.is_published()

    def _forget(self, skipped: list[ManifestCommit], ledger: CreatedObjects) -> None:
        for made in skipped:
            if made.object_name is not None:
                ledger.forget(made.object_name)
            LOG.warning(f"{made.manifest_path} was already pushed by another run; skipped")


def describe(rollback: RollbackResult, transaction: PublishTransaction | None) -> str:
    """`transaction` is None for a shard, which never touches git."""
    branch = f"branch {transaction.branch} reset to {transaction.start[:12]}; " if transaction else ""
    lines = [f"rolled back: {branch}deleted {len(rollback.deleted)} object(s) this run created"]
    lines += [f"  deleted {name}" for name in rollback.deleted]
    lines += [f"  could NOT delete {name}: {reason}" for name, reason in rollback.failed.items()]
    lines += [f"  {name} {reason}" for name, reason in rollback.kept.items()]
    return "\n".join(lines)
