"""The master CI job as one function: plan, build artifacts, commit, push; or undo all of it."""

from __future__ import annotations

import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import git
from ..errors import ExchangeError, UsageError
from ..export import ExportOptions
from ..invocation import derive_invocation_schema
from ..progress import NullProgress, Progress
from ..repository import Exchange
from ..delivery.stage import Delivery, DeliverySettings
from .artifacts import Artifact, produce_artifact
from .ledger import CreatedObjects, RollbackResult
from .plan import Plan, SpecJob, make_plan
from .shards import Shard
from .signals import CancellableProgress, interrupts_raise
from .transaction import ManifestCommit, PublishTransaction

Log = Callable[[str], None]


class ProcessFailed(ExchangeError):
    pass


@dataclass
class ProcessOptions:
    export: ExportOptions
    bucket: object  # a storage.Bucket, opened before any work so a bad setting fails first
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

    @property
    def selected_jobs(self) -> list[SpecJob]:
        return self.plan.jobs if self.share is None else self.share


def process_exchange(exchange: Exchange, options: ProcessOptions, *, progress: Progress = NullProgress(),
                     log: Log = lambda message: None,
                     on_outcome: Callable[[ProcessOutcome], None] = lambda outcome: None) -> ProcessOutcome:
    """`on_outcome` receives the outcome as soon as there is a plan; the run keeps filling it in."""
    start, branch = check_preconditions(exchange, options.remote, publishing=options.shard is None)
    plan = make_plan(exchange, start, since=options.since)
    outcome = ProcessOutcome(plan, shard=options.shard)
    on_outcome(outcome)
    if options.shard is not None:
        from .fan_out import process_shard

        return process_shard(outcome, options, progress=progress, log=log)
    if options.dry_run or (not plan.jobs and options.finalize_dir is None):
        return outcome
    delivery = Delivery(options.delivery, options.export, log)
    if options.finalize_dir is None:
        # a failing image stops the run before anything is uploaded
        delivery.check(plan.jobs, progress, workers=options.jobs)
    identity = {} if git.has_identity(exchange.repo) else git.bot_identity_env()
    transaction = PublishTransaction(exchange, options.remote, branch, start, start, identity)
    ledger = CreatedObjects()
    cancelled = threading.Event()
    work_dir = Path(tempfile.mkdtemp(prefix="exchange-process-"))
    try:
        with interrupts_raise():
            if options.finalize_dir is not None:
                from .fan_in import collect_shard_artifacts

                outcome.artifacts = collect_shard_artifacts(plan, options, ledger, log, delivery)
            else:
                outcome.artifacts = build_artifacts(plan, options, work_dir, ledger,
                                                    CancellableProgress(progress, cancelled), cancelled, log,
                                                    on_artifact=outcome.exported.append, delivery=delivery)
            for artifact in outcome.artifacts:
                made = transaction.commit_manifest(artifact, derive_invocation_schema(artifact.job.spec, artifact.job.kind))
                log(f"committed {made.commit[:12]} {artifact.job.commit_message}")
            if transaction.commits:  # a finalize step over shards that found nothing to do has none
                log(f"pushing {len(transaction.commits)} commit(s) to {options.remote} {branch}")
                transaction.push(retries=options.retries, on_replayed=lambda skipped: _forget(skipped, ledger, log))
                outcome.pushed = True
    except git.PushRejected as rejection:
        rollback = outcome.rollback = undo(transaction, ledger, options.bucket, delivery)
        outcome.reset_to = transaction.start
        raise ProcessFailed(f"push to {options.remote} {branch} failed: {rejection}\n{describe(rollback, transaction)}") from None
    except BaseException:
        cancelled.set()
        if transaction.commits and transaction.is_published():
            raise  # the push landed before the interrupt: the run's work is published and referenced
        outcome.rollback, outcome.reset_to = undo(transaction, ledger, options.bucket, delivery), transaction.start
        log(describe(outcome.rollback, transaction))
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    outcome.commits, outcome.replays = transaction.commits, transaction.replays
    return outcome


def check_preconditions(exchange: Exchange, remote: str, *, publishing: bool = True) -> tuple[str, str]:
    """(start commit, branch); a run that does not publish (a shard) needs no branch and no remote."""
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


def build_artifacts(plan: Plan, options: ProcessOptions, work_dir: Path, ledger: CreatedObjects, progress: Progress,
                    cancelled: threading.Event, log: Log,
                    on_artifact: Callable[[Artifact], None] = lambda artifact: None,
                    delivery: Delivery | None = None) -> list[Artifact]:
    delivery = delivery or Delivery(options.delivery, options.export, log)
    delivery.check(plan.jobs, progress, workers=options.jobs)  # no-op for the jobs already checked

    def one(job) -> Artifact:  # noqa: ANN001
        log(f"exporting {job.title} from {job.image}")
        artifact = delivery.deliver(job, lambda: produce_artifact(job, bucket=options.bucket, export_options=options.export,
                                                                  work_dir=work_dir, ledger=ledger, progress=progress))
        verb = "uploaded" if artifact.created else "already in the bucket:"
        log(f"{verb} {artifact.object_name} ({artifact.size} bytes)")
        on_artifact(artifact)
        return artifact

    if options.jobs <= 1:
        return [one(job) for job in plan.jobs]
    with ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="export") as pool:
        futures = [pool.submit(one, job) for job in plan.jobs]
        try:
            return [future.result() for future in futures]  # plan order, whatever finishes first
        except BaseException:
            cancelled.set()
            for future in futures:
                future.cancel()
            raise


def undo(transaction: PublishTransaction, ledger: CreatedObjects, bucket,  # noqa: ANN001
         delivery: Delivery | None = None) -> RollbackResult:
    transaction.reset()
    result = ledger.delete_all(bucket)
    if delivery is not None:
        delivery.rollback(result)  # the mirrored tags this run created
    return result


def describe(rollback: RollbackResult, transaction: PublishTransaction | None) -> str:
    """`transaction` is None for a shard, which never touches git."""
    branch = f"branch {transaction.branch} reset to {transaction.start[:12]}; " if transaction else ""
    lines = [f"rolled back: {branch}deleted {len(rollback.deleted)} object(s) this run created"]
    lines += [f"  deleted {name}" for name in rollback.deleted]
    lines += [f"  could NOT delete {name}: {reason}" for name, reason in rollback.failed.items()]
    return "\n".join(lines)


def _forget(skipped: list[ManifestCommit], ledger: CreatedObjects, log: Log) -> None:
    for made in skipped:
        ledger.forget(made.artifact.object_name)
        log(f"{made.manifest_path} was already pushed by another run; skipped")
