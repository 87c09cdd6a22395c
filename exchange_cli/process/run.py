"""The orchestrators: one per mode of `exchange process`, each calling the stages in order.

    one machine   plan -> check -> artifacts (export, upload, deliver) -> publish (commit, push)
    shard I/N     plan -> share -> check -> artifacts -> shard record (no git)
    finalize      plan -> artifacts read from the shard records -> publish

Stages (plan.py, check.py, artifacts.py or fan_in.py, publish.py) never call back up here. Whatever
fails, the orchestrator undoes exactly this run's work: the bucket objects and mirrored tags it
created (shards' too at finalize) and its commits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from .. import git
from ..catalog.legacy import CatalogPublication, publish_legacy_index
from ..catalog.lifecycle import Lifecycle
from ..errors import UsageError
from ..logs import logger
from ..manifests import load_manifests
from ..ownership import claim, exchange_identity
from ..progress import PIPELINE, NullProgress, Progress
from ..provenance.attest import run_context
from ..provenance.keys import require_committed
from ..repository import Exchange
from ..storage.lease import BucketLease, Confirming
from .artifacts import Artifact, RunWork, build_artifacts, produce_artifact
from .attestations import AttestationHook
from .check import CheckedJob, check_jobs
from .checkout_lock import exclusive_checkout
from .confirm import confirm_published, finish_unfinished
from .context import Log, ProcessFailed, ProcessOptions, ProcessOutcome, PushRefused
from .delivery.settings import delivers_image
from .delivery.stage import Delivery
from .fan_in import collect_shard_artifacts
from .image_sizes import image_sizes
from .ledger import CreatedObjects
from .leftovers import owned_work_dir, remove_leftovers
from .plan import SpecJob, make_plan
from .publish import Publisher, PublishHook, describe
from .resume import resume_unpushed, unpushed_manifest_commits
from .rollback import delete_unreferenced
from .shard_records import ArtifactEntry, ShardRecord
from .shards import assign, share_of
from .signals import CancellableProgress, interrupts_raise
from .transaction import PublishTransaction

__all__ = ["ProcessFailed", "ProcessOptions", "ProcessOutcome", "process_exchange"]

LOG = logger("process")


def process_exchange(exchange: Exchange, options: ProcessOptions, *, progress: Progress = NullProgress(),
                     log: Log = lambda message: None,
                     on_outcome: Callable[[ProcessOutcome], None] = lambda outcome: None) -> ProcessOutcome:
    """`on_outcome` receives the outcome as soon as there is a plan; the run keeps filling it in."""
    with exclusive_checkout(exchange):
        start, branch = check_preconditions(exchange, options.remote, publishing=options.shard is None)
        if options.signer is not None:
            require_committed(exchange.root, options.signer.public_key)  # consumers verify with the committed key
        # Recovery and waiting are warnings: shown even with -q, they explain a pause or a changed bucket.
        broken = remove_leftovers(options.bucket, LOG.warning) if not options.dry_run else None
        lease = BucketLease(options.bucket, purpose=f"exchange process in {exchange.root}", log=LOG.warning,
                            ttl=options.lease_ttl, wait=options.lease_wait)
        if broken is not None:
            lease.inherit(broken)
        try:
            if options.shard is None and not options.dry_run:
                start = _resume_earlier_run(exchange, options, start, branch, lease, LOG.warning)
                _finish_unfinished(exchange, options, branch, lease, progress)
            elif options.shard is None:
                _, unpushed = unpushed_manifest_commits(exchange, options.remote, branch)
                if unpushed:
                    LOG.warning(f"{len(unpushed)} manifest commit(s) of an earlier run never reached {options.remote} {branch}: "
                        "a real run pushes them first, or rolls them back")
            outcome = ProcessOutcome(make_plan(exchange, start, since=options.since), shard=options.shard)
            on_outcome(outcome)
            if options.shard is not None:
                return run_shard(exchange, outcome, options, progress=progress, log=log)
            if options.finalize_dir is not None:
                run_finalize(exchange, outcome, options, start, branch, lease, progress=progress, log=log)
            else:
                run_one_machine(exchange, outcome, options, start, branch, lease, progress=progress, log=log)
        finally:
            lease.release()
        if options.shard is None and not options.dry_run and options.bucket is not None:
            # Once a run has succeeded: the bucket is this exchange's (verify-storage deletes only in its
            # owner's). A run that failed leaves nothing behind, this record included.
            claim(options.bucket, exchange_identity(exchange.repo, options.remote, branch), log, LOG.warning)
        if options.publish_index is not None and not options.dry_run:
            outcome.catalog = publish_catalog(exchange, options.publish_index, options.remote, log)
        return outcome


def publish_catalog(exchange: Exchange, branch: str, remote: str, log: Log) -> CatalogPublication:
    """After a successful run (pushed, or nothing to push): the catalog of what the branch now holds.
    A failure is reported and never rolls the run back; the next run publishes again."""
    publication = publish_legacy_index(exchange.repo, load_manifests(exchange.manifests_dir),
                                       Lifecycle(exchange.root),  # a yanked version is left out of it
                                       branch=branch, remote=remote, source_commit=git.head_commit(exchange.repo) or "")
    (log if publication.ok else LOG.warning)(publication.describe())  # a failure shows even with -q
    return publication


def run_one_machine(exchange: Exchange, outcome: ProcessOutcome, options: ProcessOptions, start: str, branch: str,
                    lease: BucketLease, *, progress: Progress, log: Log) -> ProcessOutcome:
    plan = outcome.plan
    if options.dry_run or not plan.jobs:
        return outcome
    _expect(progress, plan.jobs)
    checked = _check(plan.jobs, options, progress, log)  # a failing image stops the run before any upload
    delivery = _delivery(options, log)

    def artifacts(work: RunWork) -> list[Artifact]:
        return _build(checked, options, work, delivery, progress, log, outcome)

    return _publish_run(exchange, outcome, options, start, branch, lease, delivery, artifacts, progress, log)


def run_finalize(exchange: Exchange, outcome: ProcessOutcome, options: ProcessOptions, start: str, branch: str,
                 lease: BucketLease, *, progress: Progress, log: Log) -> ProcessOutcome:
    finalize_dir = options.finalize_dir
    assert finalize_dir is not None
    delivery = _delivery(options, log)

    def artifacts(work: RunWork) -> list[Artifact]:
        return collect_shard_artifacts(outcome.plan, finalize_dir, options.bucket, work.ledger, delivery, log)

    return _publish_run(exchange, outcome, options, start, branch, lease, delivery, artifacts, progress, log)


def run_shard(exchange: Exchange, outcome: ProcessOutcome, options: ProcessOptions, *, progress: Progress,
              log: Log) -> ProcessOutcome:
    """Export and upload this shard's share, then record it for finalize; never touches git. On failure
    the objects it created are deleted and no record is written, so finalize sees the shard as missing."""
    plan, shard, shard_dir = outcome.plan, options.shard, options.shard_dir
    assert shard is not None and (shard_dir is not None or options.dry_run)
    sizes = image_sizes(plan.jobs, options.export) if plan.jobs else {}
    assignment = assign(plan.jobs, shard.total, sizes)
    outcome.share = share_of(plan.jobs, shard, assignment)
    by = "image size" if plan.jobs and all(size is not None for size in sizes.values()) else "count"
    log(f"shard {shard}: {len(outcome.share)} of {len(plan.jobs)} spec(s), split by {by}")
    if options.dry_run:
        return outcome
    assert shard_dir is not None
    _expect(progress, outcome.share)
    checked = _check(outcome.share, options, progress, log)
    delivery = _delivery(options, log)
    with _run_work() as work:
        try:
            with interrupts_raise():
                outcome.artifacts = _build(checked, options, work, delivery, progress, log, outcome)
                record = ShardRecord(plan.source_commit, shard, options.bucket.uri, assignment,
                                     [ArtifactEntry.of(artifact) for artifact in outcome.artifacts],
                                     work.ledger.objects(), delivery.created_tags())
                outcome.record_path = record.write(shard_dir)
                log(f"shard {shard}: recorded {len(record.artifacts)} artifact(s) in {outcome.record_path}")
        except BaseException:
            work.cancelled.set()
            outcome.rollback = delete_unreferenced(work.ledger, options.bucket, exchange.repo, options.remote,
                                                   _branch_or_none(exchange))
            delivery.rollback(outcome.rollback)  # the mirrored tags this shard created
            LOG.warning(describe(outcome.rollback, None))  # shown even with -q
            raise
    return outcome


def check_preconditions(exchange: Exchange, remote: str, *, publishing: bool = True) -> tuple[str, str]:
    """(start commit, branch); a run that does not publish (a shard) needs no branch and no remote."""
    git.require_no_index_lock(exchange.repo)
    dirty = git.dirty_paths(exchange.repo)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
        raise UsageError(f"the work tree is not clean ({shown}); process needs a clean checkout")
    start = git.head_commit(exchange.repo)
    if start is None:
        raise UsageError("the repository has no commits yet")
    if not publishing:
        return start, ""
    branch = git.current_branch(exchange.repo)
    if not git.has_remote(exchange.repo, remote):
        raise UsageError(f"no git remote {remote!r} (use --remote or GIT_REMOTE)")
    return start, branch


def _publish_run(exchange: Exchange, outcome: ProcessOutcome, options: ProcessOptions, start: str, branch: str,
                 lease: BucketLease, delivery: Delivery, artifacts: Callable[[RunWork], list[Artifact]],
                 progress: Progress, log: Log) -> ProcessOutcome:
    """Under the lease: artifacts (built or read from records), publish, confirm; on failure undo this run's work."""
    transaction = PublishTransaction(exchange, options.remote, branch, start, start, _identity(exchange))
    publisher = Publisher(transaction, options.bucket, log, options.retries,
                          _hooks(exchange, options, start, log))
    published = None
    with _run_work() as work:
        try:
            with interrupts_raise():
                lease.acquire()  # before the first upload; held until the push is confirmed
                outcome.artifacts = artifacts(work)
                publisher.commit(outcome.artifacts, work.ledger)
                lease.ensure_held()
                # Before the push: should we die once it has landed, the run that breaks our lease checks
                # the objects of these manifests, wherever a replay puts them.
                lease.confirming(Confirming(start, tuple(made.manifest_path for made in transaction.commits)))
                published = publisher.push(work.ledger)
                outcome.pushed = published is not None
        except git.PushRejected as rejection:
            outcome.rollback, outcome.reset_to = publisher.rollback(work.ledger, delivery), start
            raise PushRefused(f"push to {options.remote} {branch} failed: {rejection}\n"
                              f"{describe(outcome.rollback, transaction)}") from None
        except BaseException:
            work.cancelled.set()
            if publisher.is_published():
                raise  # the push landed before the interrupt: the run's work is published and referenced
            outcome.rollback, outcome.reset_to = publisher.rollback(work.ledger, delivery), start
            LOG.warning(describe(outcome.rollback, transaction))  # shown even with -q
            raise
        outcome.commits, outcome.replays = transaction.commits, transaction.replays
        if published is not None:
            paths = [made.manifest_path for made in [*transaction.commits, *transaction.skipped]]
            confirm_published(exchange.repo, published.head, paths, outcome.artifacts, options.bucket,
                              options.export, work.work_dir, progress, LOG.warning,  # a restore is news
                              kept=publisher.restorable())
            lease.confirming(None)
    _finish_unfinished(exchange, options, branch, lease, progress)  # a dead run's lease broken while we waited
    lease.release()
    if published is not None:
        publisher.after_push(published)
    return outcome


def _resume_earlier_run(exchange: Exchange, options: ProcessOptions, start: str, branch: str, lease: BucketLease,
                        log: Log) -> str:
    """The start commit once an earlier run's unpushed manifest commits are pushed or rolled back."""
    transaction = PublishTransaction(exchange, options.remote, branch, start, start, _identity(exchange))
    resumed = resume_unpushed(exchange, transaction, options.bucket, retries=options.retries, log=log,
                              before_push=lease.acquire)
    return start if resumed is None else git.head_commit(exchange.repo) or start


def _finish_unfinished(exchange: Exchange, options: ProcessOptions, branch: str, lease: BucketLease,
                       progress: Progress) -> None:
    if lease.inherited:
        with owned_work_dir() as work_dir:
            finish_unfinished(exchange.repo, options.remote, branch, lease, options.bucket, options.export, work_dir,
                              progress, LOG.warning)


def _identity(exchange: Exchange) -> dict[str, str]:
    return {} if git.has_identity(exchange.repo) else git.bot_identity_env()


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


def _check(jobs: Sequence[SpecJob], options: ProcessOptions, progress: Progress, log: Log) -> list[CheckedJob]:
    return check_jobs(jobs, options.delivery, options.export, progress, log, workers=options.jobs)


def _delivery(options: ProcessOptions, log: Log) -> Delivery:
    return Delivery(options.delivery, options.export.insecure_registries, log)


def _build(checked: list[CheckedJob], options: ProcessOptions, work: RunWork, delivery: Delivery, progress: Progress,
           log: Log, outcome: ProcessOutcome) -> list[Artifact]:
    cancellable = CancellableProgress(progress, work.cancelled)

    def make(item: CheckedJob) -> Artifact:
        return delivery.deliver(item, lambda job: produce_artifact(job, bucket=options.bucket, work=work,
                                                                   progress=cancellable,
                                                                   with_sha256=options.signer is not None))

    return build_artifacts(checked, make, work=work, export_options=options.export, jobs=options.jobs, log=log,
                           on_artifact=outcome.exported.append)


def _hooks(exchange: Exchange, options: ProcessOptions, start: str, log: Log) -> list[PublishHook]:
    if options.signer is None:
        return []
    context = run_context(start, git.remote_url(exchange.repo, options.remote), exchange.root)
    return [AttestationHook(exchange, options.signer, context, options.bucket, log)]


@contextmanager
def _run_work() -> Iterator[RunWork]:
    with owned_work_dir() as work_dir:
        yield RunWork(CreatedObjects(), threading.Event(), work_dir)
