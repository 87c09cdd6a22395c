"""Who vouched: the commits that put a trusted key and a manifest into the exchange.

`exchange verify` without `--key` trusts the keys the repository holds, and a pull request can add
files there. So the verdict names the commit that added the key it trusted and the commit that added
the manifest, and a manifest that no `process` run committed is reported as such: it fails the check
unless `--allow-unprocessed`. A process run's commits carry the trailer `Exchange-Processed-By:`.

The trailer is a record, not a signature: anyone can write it in a commit message. It catches the honest
mistakes and makes the history readable; what keeps a contributor's commit out of the branch is the
branch job (`validate --base` fails a change to manifests/ or .exchange/keys/) and review, and what a
platform should rely on is a key it pinned (`verify --key`), which skips this check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git as gitpython

from ..quoting import short_text

PROCESS_TRAILER = "Exchange-Processed-By"
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class Addition:
    """The commit that added a file, as `git log` tells it."""

    commit: str
    author: str
    date: str
    subject: str
    processed_by: str  # the trailer's value; "" when the commit carries none
    at_clone_boundary: bool  # a shallow clone's oldest commit "adds" every file it holds

    def describe(self) -> str:
        return (f"commit {self.commit[:12]} by {short_text(self.author, 60)} on {self.date[:10]} "
                f"({short_text(self.subject, 80)!r})")


def addition(repo: gitpython.Repo, path: str) -> Addition | None:
    """The commit that first added `path` on the checked-out history; None when git knows none."""
    log = repo.git.log("--diff-filter=A", "--no-renames",
                       f"--format=%H{_FIELD}%an{_FIELD}%aI{_FIELD}%s{_FIELD}"
                       f"%(trailers:key={PROCESS_TRAILER},valueonly,separator=%x2C){_RECORD}", "--", path)
    records = [record.strip("\n") for record in log.split(_RECORD) if record.strip()]
    if not records:
        return None
    commit, author, date, subject, trailer = (records[-1].split(_FIELD) + [""] * 5)[:5]
    return Addition(commit, author, date, subject, trailer.strip(), commit in _shallow_commits(repo))


def _shallow_commits(repo: gitpython.Repo) -> set[str]:
    try:
        return set((Path(repo.git_dir) / "shallow").read_text().split())
    except OSError:
        return set()


def custody(repo: gitpython.Repo, key_path: str | None, manifest_path: str | None, *,
            allow_unprocessed: bool) -> tuple[bool, str]:
    """(ok, detail) of the `custody` check: who added the key and the manifest."""
    parts, ok = [], True
    if key_path is not None:
        parts.append(f"key {key_path} added by {_who(addition(repo, key_path))}")
    if manifest_path is None:
        parts.append("the manifest is not a file of this repository: who committed it is not known here")
    else:
        added = addition(repo, manifest_path)
        if added is None or added.at_clone_boundary:
            parts.append(f"manifest added by {_who(added)}")
            ok = allow_unprocessed
            if not ok:
                parts.append("who committed it cannot be told (fetch the full history, or pass --allow-unprocessed)")
        elif added.processed_by:
            parts.append(f"manifest added by {added.describe()}, a process run ({PROCESS_TRAILER}: "
                         f"{short_text(added.processed_by, 60)})")
        else:
            parts.append(f"manifest added by {added.describe()}, which is not a process run (no "
                         f"{PROCESS_TRAILER} trailer)")
            ok = allow_unprocessed
            if not ok:
                parts.append("a manifest nobody processed proves nothing about its artifact; pass "
                             "--allow-unprocessed to accept it, or --key to pin the key you trust")
    return ok, "; ".join(parts)


def _who(added: Addition | None) -> str:
    if added is None:
        return "no commit (not committed)"
    if added.at_clone_boundary:
        return f"{added.describe()}, the oldest commit of this shallow clone (the real one is older)"
    return added.describe()
