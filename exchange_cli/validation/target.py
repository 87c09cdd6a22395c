"""The target branch judges a change: what a pull request may propose, and what it can never decide.

The branch CI job runs ``exchange validate --base origin/master`` on a contributor's pull request.
Everything that decides the verdict is read from the target branch's tip, never from the change:

- which specs are checked: those the change adds or modifies since its merge base with the target
  (the change's own `.sentinel` is never read, so it cannot shrink the set to nothing);
- the policy (`.exchange.yaml`), the manifests (`version-taken`, `already-processed`), the sentinel (which
  spec files are already established) and the trusted keys: from the target's tip;
- the control paths themselves (`PROTECTED_PATHS`): a change that touches one fails with one
  `protected-path` error per file, unless a maintainer approves it in a way a contributor cannot forge
  (`approval`).

The tip's control files are checked out into a temporary directory through a temporary index, so the
repository's own index, work tree and branches are never touched, and the usual readers (links named,
never followed; sizes bounded) apply to them unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git as gitpython

from .. import git
from ..errors import UsageError
from ..quoting import printable
from ..repository import MANIFESTS, SENTINEL, Exchange
from .policy import POLICY_FILE, Policy, load_policy

KEYS_DIR = ".exchange/keys"
# What judges a change, and where published state lives: a pull request proposes specs, never these.
# ".exchange" holds the keys and the maintainers' yank and deprecation records (catalog.lifecycle): a pull
# request can neither yank nor unyank, silently or not.
PROTECTED_PATHS = (SENTINEL, MANIFESTS, POLICY_FILE, ".exchange", "schemas", ".circleci")
# What the target's tip is read for; checked out below `Target.root`.
CONTROL_FILES = (SENTINEL, MANIFESTS, POLICY_FILE, KEYS_DIR)
APPROVAL_ENV = "EXCHANGE_MAINTAINER_APPROVAL"
BASE_ENV = "EXCHANGE_BASE"


@dataclass(frozen=True)
class Target:
    """The branch a change is judged against."""

    ref: str  # as given (--base)
    tip: str  # the branch's commit: its rules judge
    merge_base: str  # where the change left it: what the change introduces is measured from here
    root: Path  # the tip's control files, checked out (read-only use)


@dataclass(frozen=True)
class ProtectedChange:
    path: str  # repository-relative
    change: str  # added, modified, deleted


@dataclass(frozen=True)
class Approval:
    approved: bool
    reason: str  # why (not), for the report


@contextmanager
def target_branch(exchange: Exchange, ref: str) -> Iterator[Target]:
    tip = git.resolve_commit(exchange.repo, ref, what="--base")
    head = git.head_commit(exchange.repo)
    if head is None:
        raise UsageError("the repository has no commit yet; there is no change to judge against --base")
    try:
        merge_base = exchange.repo.git.merge_base(head, tip).strip()
    except git.GitFailed:
        shallow = " (a shallow clone? fetch the full history)" if git.is_shallow(exchange.repo) else ""
        raise UsageError(f"--base {printable(ref)}: HEAD shares no history with it{shallow}") from None
    with tempfile.TemporaryDirectory(prefix="exchange-target-") as temp:
        root = Path(temp) / "tree"
        root.mkdir()
        _check_out(exchange.repo, tip, CONTROL_FILES, root, Path(temp) / "index")
        yield Target(ref, tip, merge_base, root)


def _check_out(repo: gitpython.Repo, commit: str, paths: tuple[str, ...], into: Path, index: Path) -> None:
    """`paths` of `commit` into `into`, through our own index file: the repository's stays as it is."""
    files = [p for p in repo.git.ls_tree("-r", "-z", "--name-only", commit, "--", *paths).split("\0") if p]
    if not files:
        return
    with repo.git.custom_environment(GIT_INDEX_FILE=str(index)):
        repo.git.read_tree(commit)
        listing = into.parent / "files"
        listing.write_bytes(b"".join(path.encode("utf-8", "surrogateescape") + b"\0" for path in files))
        with listing.open("rb") as stream:
            repo.git.checkout_index("-z", "--stdin", f"--prefix={into}{os.sep}", istream=stream)


def target_policy(target: Target) -> Policy:
    return load_policy(target.root)


def protected_changes(exchange: Exchange, target: Target, policy: Policy) -> list[ProtectedChange]:
    """Every file under a protected path (ours, and those the target's policy adds) that the change adds,
    modifies or deletes since the merge base (the work tree counted, untracked files included)."""
    pathspecs = [f":(literal){path}" for path in (*PROTECTED_PATHS, *policy.protected_paths)]
    status = exchange.repo.git.diff("--name-status", "--no-renames", "-z", target.merge_base, "--", *pathspecs)
    fields = [f for f in status.split("\0") if f]
    changes = {path: _CHANGE.get(letter[:1], "changed") for letter, path in zip(fields[::2], fields[1::2], strict=True)}
    untracked = exchange.repo.git.ls_files("--others", "--exclude-standard", "-z", "--", *pathspecs)
    changes.update({path: "added" for path in untracked.split("\0") if path})
    return [ProtectedChange(path, change) for path, change in sorted(changes.items())]


_CHANGE = {"A": "added", "M": "modified", "D": "deleted", "T": "changed into another type"}


def approval(policy: Policy, environ: dict[str, str] | None = None) -> Approval:
    """A maintainer's approval of protected changes: the token in EXCHANGE_MAINTAINER_APPROVAL, whose
    sha256 the *target's* policy records (trust.maintainer-approval-sha256). The token lives in a
    CircleCI context restricted to maintainers; a contributor can set the variable in their own config,
    but cannot know a value whose hash the target branch holds."""
    token = (os.environ if environ is None else environ).get(APPROVAL_ENV, "")
    if not token:
        return Approval(False, f"no maintainer approval ({APPROVAL_ENV} is not set)")
    expected = policy.approval_sha256
    if expected is None:
        return Approval(False, f"{APPROVAL_ENV} is set, but the target branch's {POLICY_FILE} records no "
                               "trust.maintainer-approval-sha256 to check it against")
    actual = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
    if not hmac.compare_digest(actual, expected):
        return Approval(False, f"{APPROVAL_ENV} does not match the target branch's trust.maintainer-approval-sha256")
    return Approval(True, f"approved by a maintainer ({APPROVAL_ENV} matches the target branch's policy)")
