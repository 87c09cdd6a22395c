"""Stage 0, recover: one context around every other stage, entered once (as pre-commit's staged-files
context wraps its hooks), so that whatever an earlier run left, this one starts clean.

On entry, in this order:

    checkout_lock.py   one run per work tree, held until the context exits
    preconditions      a clean work tree with a commit; a publishing run needs its remote
    leftovers.py       dead runs' work directories, partial uploads and stale lease (not by a shard), removed
    the lease          (storage/lease.py) made here; held while resuming or finishing, then released
                       until the first upload (`holding_lease`)
    resume.py          an earlier run's unpushed manifest commits: pushed, or rolled back
    confirm.py         (finish_unfinished) the check after a push that a dead run never finished

`holding_lease` is the bucket's side of the same context: the stages that change the bucket run inside
it; on a clean exit it first finishes the checks of dead runs whose leases were broken while we waited.
A dry run removes nothing, pushes nothing and only says what a real run would resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import git
from ..commit_identity import commit_env
from ..errors import UsageError
from ..progress import Progress
from ..provenance.keys import require_committed
from ..repository import Exchange
from ..storage.lease import BucketLease, Confirming
from .checkout_lock import exclusive_checkout
from .context import Log, ProcessOptions
from .leftovers import owned_work_dir, remove_leftovers
from .resume import resume_unpushed, unpushed_manifest_commits


@dataclass
class Recovery:
    """What the recover stage hands the others: where the run starts, on which branch, and the bucket lease
    (made, not held). Only this module calls the recovery steps; the stages use the lease it made."""

    exchange: Exchange
    options: ProcessOptions
    start: str  # HEAD once an earlier run's commits are pushed or rolled back
    branch: str  # "" for a shard, which publishes nothing
    lease: BucketLease
    identity_env: dict[str, str]  # who the run's commits are by (commit_env), asked of git once per run
    finished: list[Confirming] = field(default_factory=list)  # dead runs' checks done, of lease.inherited

    @contextmanager
    def holding_lease(self, progress: Progress, warn: Log) -> Iterator[BucketLease]:
        """The lease for the stages that change the bucket (they acquire it before their first upload):
        released on any exit; on a clean one, after finishing what dead runs left (their leases, broken
        while we waited for ours, say which pushed manifests still need their check)."""
        try:
            yield self.lease
            self.finish_dead_runs(progress, warn)
        finally:
            self.lease.release()

    def finish_dead_runs(self, progress: Progress, warn: Log) -> None:
        """The checks after a push that dead runs left unfinished, oldest first; acquiring the lease for
        one may break another dead run's lease, whose check is then finished too."""
        if self._unfinished() is None:
            return
        from .confirm import finish_unfinished  # it may export again: only for what a dead run left

        with owned_work_dir() as work_dir:
            while (pending := self._unfinished()) is not None:
                finish_unfinished(self.exchange.repo, self.options.remote, self.branch, self.lease, pending,
                                  self.options.bucket, self.options.export, work_dir, progress, warn)
                self.finished.append(pending)

    def _unfinished(self) -> Confirming | None:
        return next((check for check in self.lease.inherited if check not in self.finished), None)


@contextmanager
def recovered(exchange: Exchange, options: ProcessOptions, progress: Progress, warn: Log) -> Iterator[Recovery]:
    """Recovery and waiting are warnings (`warn`): shown even with -q, they explain a pause or a changed bucket."""
    publishing = options.shard is None
    with exclusive_checkout(exchange):
        start, branch = check_preconditions(exchange, options.remote, publishing=publishing)
        if options.signer is not None:
            require_committed(exchange.root, options.signer.public_key)  # consumers verify with the committed key
        broken = remove_leftovers(options.bucket, warn, break_lease=publishing) if not options.dry_run else None
        lease = BucketLease(options.bucket, purpose=f"exchange process in {exchange.root}", log=warn,
                            ttl=options.lease_ttl, wait=options.lease_wait)
        if broken is not None:
            lease.inherit(broken)
        committer = commit_env(exchange.repo) if publishing else {}
        try:
            resumed = None
            if publishing and not options.dry_run:
                resumed = resume_unpushed(exchange, options.remote, branch, options.bucket, retries=options.retries,
                                          identity_env=committer, log=warn, before_push=lease.acquire)
            elif publishing:
                _say_what_would_resume(exchange, options.remote, branch, warn)
            if resumed is not None:
                start = git.head_commit(exchange.repo) or start
            recovery = Recovery(exchange, options, start, branch, lease, committer)
            if publishing and not options.dry_run:
                recovery.finish_dead_runs(progress, warn)
            # Resuming and finishing take the lease; done, they let go of it until the first upload
            # (holding_lease), so other runs wait for this one only while it changes the bucket.
            lease.release()
            yield recovery
        finally:
            lease.release()


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


def _say_what_would_resume(exchange: Exchange, remote: str, branch: str, warn: Log) -> None:
    _, unpushed = unpushed_manifest_commits(exchange, remote, branch)
    if unpushed:
        warn(f"{len(unpushed)} manifest commit(s) of an earlier run never reached {remote} {branch}: "
             "a real run pushes them first, or rolls them back")
