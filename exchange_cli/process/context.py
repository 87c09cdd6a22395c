"""What every stage of a process run is given (the options, a log) and what the run fills in (the outcome).

Nothing here runs a stage: the stages import this module, never the orchestrators in run.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Category, ExchangeError
from ..storage import DEFAULT_WAIT_SECONDS
from ..storage.lease import DEFAULT_TTL_SECONDS
from .delivery.settings import DeliverySettings

if TYPE_CHECKING:  # only named here: a run loads the exporter, the signer, … when it enters their stages
    from ..catalog.legacy import CatalogPublication
    from ..image.resolve import ExportOptions
    from ..provenance.signers import Signer
    from ..storage.bucket import Bucket
    from .artifacts import Artifact
    from .ledger import RollbackResult
    from .plan import Plan, SpecJob
    from .shards import Shard
    from .transaction import ManifestCommit, PublishTransaction

Log = Callable[[str], None]


class ProcessFailed(ExchangeError):
    pass


class PushRefused(ProcessFailed):
    """The remote refused the run's push (a hook, a protected branch, a race lost after every retry): the
    environment, like an unreachable remote, so exit 2; the run is rolled back."""

    category = Category.ENVIRONMENT


@dataclass
class ProcessOptions:
    export: ExportOptions
    bucket: Bucket  # opened before any work, so a bad setting fails first
    remote: str = "origin"
    since: str | None = None
    jobs: int = 1
    retries: int = 0
    dry_run: bool = False
    # Conformance checks before any upload, and the mirror registry images are delivered to.
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    # Fan-out: export and upload only this shard's share, and record it in shard_dir (no git changes).
    shard: Shard | None = None
    shard_dir: Path | None = None
    # Fan-in: publish what the shards recorded in this directory, instead of exporting.
    finalize_dir: Path | None = None
    # The bucket lease (storage/lease.py): how long to wait for another run's, how long ours lasts unrenewed.
    lease_wait: float = DEFAULT_WAIT_SECONDS
    lease_ttl: float = DEFAULT_TTL_SECONDS
    # After a successful run, publish the old pipeline's exchange.json to this branch (catalog.legacy).
    publish_index: str | None = None
    # Signs every artifact's provenance; None: the run publishes unsigned.
    # Shards only hash for it: the publishing step (one machine, or finalize) signs.
    signer: Signer | None = None
    # Write squashfs images with a tar2sqfs version the exchange was not tested with (rootfs/squashfs.py).
    allow_untested_squashfs_tools: bool = False


@dataclass
class ProcessOutcome:
    plan: Plan
    artifacts: list[Artifact] = field(default_factory=list)
    commits: list[ManifestCommit] = field(default_factory=list)
    pushed: bool = False
    replays: int = 0
    # Filled as the run goes, so a report can say what happened even when the run fails.
    exported: list[Artifact] = field(default_factory=list)
    rollback: RollbackResult | None = None
    reset_to: str | None = None
    shard: Shard | None = None
    share: list[SpecJob] | None = None  # a shard's specs; None when the run covers the whole plan
    record_path: Path | None = None
    catalog: CatalogPublication | None = None  # --publish-index: what publishing the catalog did

    def published(self, transaction: PublishTransaction, *, pushed: bool) -> None:
        """The publish stage's commits, as they reached the remote (replayed, some skipped)."""
        self.commits, self.replays, self.pushed = list(transaction.commits), transaction.replays, pushed

    @property
    def selected_jobs(self) -> list[SpecJob]:
        return self.plan.jobs if self.share is None else self.share
