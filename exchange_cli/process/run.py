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
from .artifacts import Artifact, produce_artifact
from .ledger import CreatedObjects, RollbackResult
from .plan import Plan, make_plan
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


@dataclass
class ProcessOutcome:
    plan: Plan
    artifacts: list[Artifact] = field(default_factory=list)
    commits: list[ManifestCommit] = field(default_factory=list)
    pushed: bool = False
    replays: int = 0


def process_exchange(exchange: Exchange, options: ProcessOptions, *, progress: Progress = NullProgress(),
                     log: Log = lambda message: None) -> ProcessOutcome:
    start, branch = check_preconditions(exchange, options.remote)
    plan = make_plan(exchange, start, since=options.since)
    outcome = ProcessOutcome(plan)
    if options.dry_run or not plan.jobs:
        return outcome
    identity = {} if git.has_identity(exchange.repo) else git.bot_identity_env()
    transaction = PublishTransaction(exchange, options.remote, branch, start, start, identity)
    ledger = CreatedObjects()
    cancelled = threading.Event()
    work_dir = Path(tempfile.mkdtemp(prefix="exchange-process-"))
    try:
        with interrupts_raise():
            outcome.artifacts = build_artifacts(plan, options, work_dir, ledger, CancellableProgress(progress, cancelled),
                                                cancelled, log)
            for artifact in outcome.artifacts:
                made = transaction.commit_manifest(artifact, derive_invocation_schema(artifact.job.spec, artifact.job.kind))
                log(f"committed {made.commit[:12]} {artifact.job.commit_message}")
            log(f"pushing {len(transaction.commits)} commit(s) to {options.remote} {branch}")
            transaction.push(retries=options.retries, on_replayed=lambda skipped: _forget(skipped, ledger, log))
            outcome.pushed = True
    except git.PushRejected as rejection:
        rollback = undo(transaction, ledger, options.bucket)
        raise ProcessFailed(f"push to {options.remote} {branch} failed: {rejection}\n{describe(rollback, transaction)}") from None
    except BaseException:
        cancelled.set()
        if transaction.commits and transaction.is_published():
            raise  # the push landed before the interrupt: the run's work is published and referenced
        log(describe(undo(transaction, ledger, options.bucket), transaction))
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    outcome.commits, outcome.replays = transaction.commits, transaction.replays
    return outcome


def check_preconditions(exchange: Exchange, remote: str) -> tuple[str, str]:
    dirty = git.dirty_paths(exchange.repo)
    if dirty:
        shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
        raise UsageError(f"the work tree is not clean ({shown}); process needs a clean checkout")
    start = git.head_commit(exchange.repo)
    if start is None:
        raise UsageError("the repository has no commits yet")
    branch = git.current_branch(exchange.repo)
    if not git.has_remote(exchange.repo, remote):
        raise UsageError(f"no git remote {remote!r} (use --remote or GIT_REMOTE)")
    return start, branch


def build_artifacts(plan: Plan, options: ProcessOptions, work_dir: Path, ledger: CreatedObjects, progress: Progress,
                    cancelled: threading.Event, log: Log) -> list[Artifact]:
    def one(job) -> Artifact:  # noqa: ANN001
        log(f"exporting {job.title} from {job.image}")
        artifact = produce_artifact(job, bucket=options.bucket, export_options=options.export, work_dir=work_dir,
                                    ledger=ledger, progress=progress)
        verb = "uploaded" if artifact.created else "already in the bucket:"
        log(f"{verb} {artifact.object_name} ({artifact.size} bytes)")
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


def undo(transaction: PublishTransaction, ledger: CreatedObjects, bucket) -> RollbackResult:  # noqa: ANN001
    transaction.reset()
    return ledger.delete_all(bucket)


def describe(rollback: RollbackResult, transaction: PublishTransaction) -> str:
    lines = [f"rolled back: branch {transaction.branch} reset to {transaction.start[:12]}; "
             f"deleted {len(rollback.deleted)} object(s) this run created"]
    lines += [f"  deleted {name}" for name in rollback.deleted]
    lines += [f"  could NOT delete {name}: {reason}" for name, reason in rollback.failed.items()]
    return "\n".join(lines)


def _forget(skipped: list[ManifestCommit], ledger: CreatedObjects, log: Log) -> None:
    for made in skipped:
        ledger.forget(made.artifact.object_name)
        log(f"{made.manifest_path} was already pushed by another run; skipped")
