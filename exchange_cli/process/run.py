"""The orchestrator: `process_exchange` enters each stage once, in order, for every mode of the run.

    0 recover    recovery.py    a context around the rest: lock, leftovers, lease, resume
    1 plan       plan.py        (a shard: its share, shards.py)
    2 check      check.py       (not at --finalize: each shard checked its images)
    3 artifacts  artifacts.py and delivery/ (at --finalize: fan_in.py, from the shards' records)
    4 publish    publish.py     manifests committed and pushed (a shard: its record, which finalize publishes)
    5 confirm    confirm.py     once a push landed

Each stage is a function given what it needs and returning its record; none calls back up here.
Whatever fails in stages 3 and 4, `_undone_on_failure` undoes exactly this run's work (rollback.py):
the bucket objects and mirrored tags it created (the shards' too at finalize) and its commits.

The functions of stages 2 to 5 import their modules as the run enters them: a run with nothing to do,
and a dry run, load neither the checks, the exporter, a registry client nor the signer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import git
from ..errors import UsageError
from ..logs import logger
from ..ownership import claim, exchange_identity
from ..progress import PIPELINE, NullProgress, Progress
from ..storage.lease import Confirming
from .context import Log, ProcessFailed, ProcessOptions, ProcessOutcome, PushRefused
from .delivery.settings import delivers_image
from .leftovers import owned_work_dir
from .plan import make_plan
from .recovery import recovered
from .shards import share_for
from .signals import CancellableProgress, interrupts_raise

if TYPE_CHECKING:
    from ..catalog.legacy import CatalogPublication
    from ..repository import Exchange
    from ..rootfs.squashfs import Tar2sqfs
    from ..storage.lease import BucketLease
    from .artifacts import Artifact, RunWork
    from .check import CheckedJob
    from .delivery.stage import Delivery
    from .ledger import RollbackResult
    from .plan import Plan, SpecJob
    from .publish import Published, Publisher, PublishHook
    from .recovery import Recovery
    from .shards import Share
    from .transaction import PublishTransaction

__all__ = ["STAGES", "ProcessFailed", "ProcessOptions", "ProcessOutcome", "process_exchange"]

LOG = logger("process")

RECOVER, PLAN, CHECK, ARTIFACTS, PUBLISH, CONFIRM = STAGES = (
    "recover", "plan", "check", "artifacts", "publish", "confirm")


@dataclass(frozen=True)
class Run:
    """What every stage after recovery is handed."""

    exchange: Exchange
    options: ProcessOptions
    recovery: Recovery
    progress: Progress
    log: Log

    @property
    def publishing(self) -> bool:
        """Commits and pushes (one machine, or finalize); a shard only records its work."""
        return self.options.shard is None

    def has_work(self, outcome: ProcessOutcome) -> bool:
        """Not a dry run, and something planned; a shard records even an empty share (finalize checks
        that every shard did), and finalize checks the records even then."""
        one_machine = self.publishing and self.options.finalize_dir is None
        return not self.options.dry_run and (bool(outcome.plan.jobs) or not one_machine)


def process_exchange(exchange: Exchange, options: ProcessOptions, *, progress: Progress = NullProgress(),
                     log: Log = lambda message: None,
                     on_outcome: Callable[[ProcessOutcome], None] = lambda outcome: None,
                     on_stage: Callable[[str], None] = lambda stage: None) -> ProcessOutcome:
    """`on_stage` hears each stage's name as it is entered; `on_outcome` receives the outcome as soon as
    there is a plan, and the run keeps filling it in."""
    on_stage(RECOVER)
    with recovered(exchange, options, progress, LOG.warning) as recovery, ExitStack() as held:
        run = Run(exchange, options, recovery, progress, log)
        on_stage(PLAN)
        outcome, share = plan_stage(run)
        on_outcome(outcome)
        if not run.has_work(outcome):
            return after_the_run(run, outcome)
        checked: list[CheckedJob] = []
        if options.finalize_dir is None:  # at finalize, each shard checked its own images
            from .check import close_trees

            on_stage(CHECK)
            checked = check_stage(run, outcome.selected_jobs)
            held.callback(close_trees, checked)  # each export closes its own tree: these were never exported
        delivery, publisher, published = _delivery(run), _publisher(run), None
        with _lease_for(run) as lease, _run_work() as work:
            with _undone_on_failure(run, outcome, work, delivery, publisher):
                if publisher is not None:
                    lease.acquire()  # before the first upload; held until the push is confirmed
                on_stage(ARTIFACTS)
                outcome.artifacts = artifacts_stage(run, outcome.plan, checked, work, delivery,
                                                    on_artifact=outcome.exported.append)
                on_stage(PUBLISH)
                if publisher is None:
                    outcome.record_path = record_stage(run, share, outcome.artifacts, work, delivery)
                else:
                    published = publish_stage(run, publisher, lease, outcome.artifacts, work)
                    outcome.published(publisher.transaction, pushed=published is not None)
            if publisher is not None and published is not None:
                on_stage(CONFIRM)
                confirm_stage(run, publisher, published, outcome.artifacts, work)
        if publisher is not None and published is not None:
            publisher.after_push(published)  # nothing can roll the run back any more
        return after_the_run(run, outcome)


def plan_stage(run: Run) -> tuple[ProcessOutcome, Share | None]:
    """The plan (and, for a shard, its share): what the run will do."""
    options = run.options
    plan = make_plan(run.exchange, run.recovery.start, since=options.since)
    if options.shard is None:
        return ProcessOutcome(plan), None
    share = share_for(options.shard, plan.jobs, options.export)
    run.log(share.describe(options.shard, len(plan.jobs)))
    return ProcessOutcome(plan, shard=options.shard, share=share.jobs), share


def check_stage(run: Run, jobs: Sequence[SpecJob]) -> list[CheckedJob]:
    """Every image resolved once and checked; a failing image stops the run before any upload."""
    from .check import check_jobs

    _expect(run.progress, jobs)
    options = run.options
    return check_jobs(jobs, options.delivery, options.export, run.progress, run.log, workers=options.jobs)


def artifacts_stage(run: Run, plan: Plan, checked: list[CheckedJob], work: RunWork, delivery: Delivery, *,
                    on_artifact: Callable[[Artifact], None]) -> list[Artifact]:
    """Exported and uploaded (and delivered), in plan order; at finalize, read from the shards' records."""
    from .artifacts import build_artifacts, produce_artifact

    options = run.options
    if options.finalize_dir is not None:
        from .fan_in import collect_shard_artifacts

        return collect_shard_artifacts(plan, options.finalize_dir, options.bucket, work.ledger, delivery,
                                       run.log)
    cancellable = CancellableProgress(run.progress, work.cancelled)
    squashfs = _squashfs_writer(run)

    def make(item: CheckedJob) -> Artifact:
        return delivery.deliver(item, lambda job: produce_artifact(job, bucket=options.bucket, work=work,
                                                                   progress=cancellable,
                                                                   with_sha256=options.signer is not None,
                                                                   squashfs=squashfs))

    return build_artifacts(checked, make, work=work, export_options=options.export, jobs=options.jobs, log=run.log,
                           on_artifact=on_artifact)


def _squashfs_writer(run: Run) -> Tar2sqfs | None:
    """The tar2sqfs to write each squashfs image with, when the exchange's policy asks for the format
    (artifacts.formats); found before the first export, so a missing or untested one fails the run early."""
    from ..rootfs.squashfs import find_tar2sqfs
    from ..validation.policy import load_policy

    if not load_policy(run.exchange.root).squashfs:
        return None
    return find_tar2sqfs(allow_untested=run.options.allow_untested_squashfs_tools)


def record_stage(run: Run, share: Share | None, artifacts: list[Artifact], work: RunWork, delivery: Delivery) -> Path:
    """A shard's publish: its record, for finalize (which publishes every shard's work at once)."""
    from .shard_records import ArtifactEntry, ShardRecord

    shard, shard_dir = run.options.shard, run.options.shard_dir
    assert shard is not None and shard_dir is not None and share is not None
    record = ShardRecord(run.recovery.start, shard, run.options.bucket.uri, share.assignment,
                         [ArtifactEntry.of(artifact) for artifact in artifacts], work.ledger.objects(),
                         delivery.created_tags())
    path = record.write(shard_dir)
    run.log(f"shard {shard}: recorded {len(record.artifacts)} artifact(s) in {path}")
    return path


def publish_stage(run: Run, publisher: Publisher, lease: BucketLease, artifacts: list[Artifact],
                  work: RunWork) -> Published | None:
    """One commit per manifest, then the push; None when there was nothing to push."""
    transaction = publisher.transaction
    publisher.commit(artifacts, work.ledger)
    lease.ensure_held()
    # Before the push: should we die once it has landed, the run that breaks our lease checks the objects
    # of these manifests, wherever a replay puts them.
    lease.confirming(Confirming(run.recovery.start, tuple(made.manifest_path for made in transaction.commits)))
    return publisher.push(work.ledger)


def confirm_stage(run: Run, publisher: Publisher, published: Published, artifacts: list[Artifact],
                  work: RunWork) -> list[str]:
    """Every object the pushed manifests reference is in the bucket (restored when not); the restored ones."""
    from .confirm import confirm_published

    transaction, options = publisher.transaction, run.options
    paths = [made.manifest_path for made in [*transaction.commits, *transaction.skipped]]
    restored = confirm_published(run.exchange.repo, published.head, paths, artifacts, options.bucket, options.export,
                                 work.work_dir, run.progress, LOG.warning,  # a restore is news
                                 kept=publisher.restorable())
    run.recovery.lease.confirming(None)
    return restored


def after_the_run(run: Run, outcome: ProcessOutcome) -> ProcessOutcome:
    """Once a publishing run has succeeded (pushed, or nothing to push): the bucket is this exchange's
    (verify-storage deletes only in its owner's; a run that failed leaves nothing behind, this record
    included), and the catalog is published. A shard or a dry run does neither."""
    exchange, options = run.exchange, run.options
    if run.publishing and not options.dry_run:
        claim(options.bucket, exchange_identity(exchange.repo, options.remote, run.recovery.branch), run.log,
              LOG.warning)
        if options.publish_index is not None:
            outcome.catalog = publish_catalog(exchange, options.publish_index, options.remote, run.log)
    return outcome


def publish_catalog(exchange: Exchange, branch: str, remote: str, log: Log) -> CatalogPublication:
    """After a successful run (pushed, or nothing to push): the catalog of what the branch now holds.
    A failure is reported and never rolls the run back; the next run publishes again."""
    from ..catalog.legacy import publish_legacy_index  # only with --publish-index
    from ..catalog.lifecycle import Lifecycle
    from ..manifests import load_manifests

    publication = publish_legacy_index(exchange.repo, load_manifests(exchange.manifests_dir),
                                       Lifecycle(exchange.root),  # a yanked version is left out of it
                                       branch=branch, remote=remote, source_commit=git.head_commit(exchange.repo) or "")
    (log if publication.ok else LOG.warning)(publication.describe())  # a failure shows even with -q
    return publication


@contextmanager
def _undone_on_failure(run: Run, outcome: ProcessOutcome, work: RunWork, delivery: Delivery,
                       publisher: Publisher | None) -> Iterator[None]:
    """Stages 3 and 4, with SIGTERM as an interrupt: whatever fails, exactly this run's work is undone
    and said, unless its push has landed (then the work is published and referenced)."""
    from .publish import describe

    transaction = publisher.transaction if publisher is not None else None
    try:
        with interrupts_raise():
            yield
    except git.PushRejected as rejection:
        assert transaction is not None  # only a push is rejected
        outcome.rollback, outcome.reset_to = _undo(run, work, delivery, transaction), run.recovery.start
        raise PushRefused(f"push to {run.options.remote} {transaction.branch} failed: {rejection}\n"
                          f"{describe(outcome.rollback, transaction)}") from None
    except BaseException:
        work.cancelled.set()
        if publisher is not None and publisher.is_published():
            raise  # the push landed before the interrupt: the run's work is published and referenced
        outcome.rollback = _undo(run, work, delivery, transaction)
        outcome.reset_to = run.recovery.start if transaction is not None else None
        LOG.warning(describe(outcome.rollback, transaction))  # shown even with -q
        raise


def _undo(run: Run, work: RunWork, delivery: Delivery, transaction: PublishTransaction | None) -> RollbackResult:
    from .rollback import undo

    branch = transaction.branch if transaction is not None else _branch_or_none(run.exchange)
    return undo(work.ledger, run.options.bucket, run.exchange.repo, run.options.remote, branch, delivery, transaction)


def _lease_for(run: Run) -> AbstractContextManager[BucketLease]:
    """A publishing run holds the bucket's lease from its first upload until its push is checked; a shard
    uploads in parallel with the others by design and takes none."""
    if run.publishing:
        return run.recovery.holding_lease(run.progress, LOG.warning)
    return nullcontext(run.recovery.lease)


def _delivery(run: Run) -> Delivery:
    from .delivery.stage import Delivery

    return Delivery(run.options.delivery, run.options.export.insecure_registries, run.log)


def _publisher(run: Run) -> Publisher | None:
    if not run.publishing:
        return None
    from .publish import Publisher
    from .transaction import PublishTransaction

    start, options = run.recovery.start, run.options
    transaction = PublishTransaction(run.exchange, options.remote, run.recovery.branch, start, start,
                                     run.recovery.identity_env)
    return Publisher(transaction, options.bucket, run.log, options.retries, _hooks(run))


def _hooks(run: Run) -> list[PublishHook]:
    exchange, options = run.exchange, run.options
    if options.signer is None:
        return []
    from ..provenance.attest import run_context
    from .attestations import AttestationHook

    context = run_context(run.recovery.start, git.remote_url(exchange.repo, options.remote), exchange.root)
    if (squashfs := _squashfs_writer(run)) is not None:
        context = context.with_squashfs(squashfs.version, squashfs.settings)
    return [AttestationHook(exchange, options.signer, context, options.bucket, run.log)]


def _branch_or_none(exchange: Exchange) -> str:
    """A shard's checkout is on the branch finalize pushes to; detached, it cannot know (and keeps all)."""
    try:
        return git.current_branch(exchange.repo)
    except UsageError:
        return ""


def _expect(progress: Progress, jobs: Sequence[SpecJob]) -> None:
    """How many specs the display's overall line counts to; a spec delivered as an image is only fetched
    here (the mirror's copy shows no row), so its bar is full once it is."""
    progress.expect(len(jobs), PIPELINE, stages_of={job.ref: ("fetch",) for job in jobs if delivers_image(job.spec)})


@contextmanager
def _run_work() -> Iterator[RunWork]:
    from .artifacts import RunWork
    from .ledger import CreatedObjects

    with owned_work_dir() as work_dir:
        yield RunWork(CreatedObjects(), threading.Event(), work_dir)
