"""Manifest commits that an earlier run made but never pushed (it was killed, or its machine was lost).

Such commits advance `.sentinel`, so without this step the next run in the same checkout would find
"nothing to process" while the remote lacks the manifests. Before planning, a publishing run looks for
local commits that the remote branch lacks and that only add manifests (and move the sentinel). If
every object they reference is in the bucket with the recorded size and hash, they are pushed (replayed
on the remote head if it moved); otherwise, or if that push fails, they are rolled back, so the plan
processes their specs again. Both outcomes are said.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import git as gitpython

from .. import git
from ..errors import ExchangeError
from ..manifests import manifests_at_commit
from ..repository import MANIFESTS, SENTINEL, Exchange
from ..storage.bucket import Bucket
from .context import Log, ProcessFailed
from .ledger import CreatedObjects
from .references import referenced_by, stored_problem
from .rollback import delete_unreferenced
from .transaction import ManifestCommit, PublishTransaction


@dataclass(frozen=True)
class Resumed:
    commits: list[str]
    pushed: bool


def unpushed_manifest_commits(exchange: Exchange, remote: str, branch: str) -> tuple[str | None, list[str]]:
    """(remote head, local commits it lacks, oldest first) when those commits only add manifests."""
    repo = exchange.repo
    remote_head = git.fetch_branch_if_any(repo, remote, branch)
    if remote_head is None:
        return None, []
    commits = repo.git.rev_list("--reverse", f"{remote_head}..HEAD").split()
    for commit in commits:
        changes = repo.git.diff_tree("--no-commit-id", "-r", "--name-status", "--no-renames", commit).splitlines()
        for change in changes:
            status, _, path = change.partition("\t")
            if not ((status == "A" and path.startswith(f"{MANIFESTS}/")) or path == SENTINEL):
                return remote_head, []  # someone's own unpushed work, not an interrupted run's: leave it
    return remote_head, commits


def resume_unpushed(exchange: Exchange, remote: str, branch: str, bucket: Bucket, *, retries: int,
                    identity_env: dict[str, str], log: Log,
                    before_push: Callable[[], None] = lambda: None) -> Resumed | None:
    """Push (or roll back) an earlier run's unpushed manifest commits; None when there are none."""
    remote_head, commits = unpushed_manifest_commits(exchange, remote, branch)
    if remote_head is None or not commits:  # no commits without a remote head
        return None
    repo = exchange.repo
    base = repo.git.rev_parse(f"{commits[0]}^")
    log(f"{len(commits)} manifest commit(s) of an earlier run never reached {remote} {branch}; "
        "checking their objects in the bucket")
    before_push()
    made = [_manifest_commit(exchange, commit) for commit in commits]
    referenced = referenced_by(repo, repo.head.commit.hexsha, [m.manifest_path for m in made])
    problems = [problem for item in referenced if (problem := stored_problem(bucket, item))]
    # The earlier run's transaction as it was: from `base`, holding its commits, for the commit it processed
    # (its .sentinel). A replay writes that sentinel again: never one of these commits, which it drops.
    source = _sentinel_at(exchange, commits[-1]) or base
    transaction = PublishTransaction(exchange, remote, branch, base, source, identity_env, commits=made)
    if problems:
        transaction.reset()
        log(f"rolled back the earlier run's {len(commits)} commit(s) (branch reset to {base[:12]}); "
            "their specs are processed again:\n  " + "\n  ".join(problems))
        _delete_what_only_they_referenced(exchange, commits[-1], [m.manifest_path for m in made], bucket,
                                          remote, branch, log)
        return Resumed(commits, pushed=False)
    try:
        if not git.is_ancestor(repo, remote_head, base):
            transaction.replay_on(remote_head)
        if transaction.commits:
            transaction.push(retries=retries)
    except (git.PushRejected, ExchangeError) as error:
        transaction.reset()
        raise ProcessFailed(f"could not push the earlier run's commits to {transaction.remote} {transaction.branch}: "
                            f"{error}\nrolled them back (branch reset to {base[:12]}); the next run processes "
                            "their specs again") from None
    log(f"pushed the earlier run's {len(commits)} manifest commit(s): every object they reference is in the bucket")
    return Resumed(commits, pushed=True)


def _delete_what_only_they_referenced(exchange: Exchange, head: str, manifest_paths: list[str], bucket: Bucket,
                                      remote: str, branch: str, log: Log) -> None:
    """The rest of the earlier run's rollback: the objects its rolled-back manifests referenced (their
    rootfs, envelopes, SBOMs, squashfs images), deleted as a failed run's are (rollback.delete_unreferenced:
    never one a manifest at the remote references, nothing when the remote cannot be read). Its specs are
    processed again, and when an image moved meanwhile (or an export came out different) the objects made
    then have other names: these would stay as orphans."""
    ours = set(manifest_paths)
    present = CreatedObjects()  # as found now: deleted only if not replaced since (its generation)
    for manifest in manifests_at_commit(exchange.repo, head).manifests:
        if manifest.relative in ours:
            for name in manifest.bucket_objects:
                if (info := bucket.stat(name)) is not None:
                    present.record(name, info.generation)
    result = delete_unreferenced(present, bucket, exchange.repo, remote, branch)
    if result.deleted:
        log(f"deleted what only they referenced: {', '.join(result.deleted)}")
    for name, reason in result.failed.items():
        log(f"could not delete {name} (verify-storage --delete-orphans can): {reason}")
    for name, reason in result.kept.items():
        log(f"{name} {reason}")


def _sentinel_at(exchange: Exchange, commit: str) -> str | None:
    """The commit `.sentinel` names at `commit`, when it names one this repository has."""
    try:
        named = exchange.repo.git.show(f"{commit}:{SENTINEL}").strip()
        return str(exchange.repo.git.rev_parse("--verify", "--quiet", f"{named}^{{commit}}"))
    except gitpython.GitCommandError:
        return None


def _manifest_commit(exchange: Exchange, commit: str) -> ManifestCommit:
    repo = exchange.repo
    added = [line.partition("\t")[2] for line in
             repo.git.diff_tree("--no-commit-id", "-r", "--name-status", "--no-renames", commit).splitlines()
             if line.startswith("A\t") and line.partition("\t")[2].startswith(f"{MANIFESTS}/")]
    message = repo.git.log("-1", "--format=%B", commit).strip()
    return ManifestCommit(commit, added[0] if added else "", None, message, None)
