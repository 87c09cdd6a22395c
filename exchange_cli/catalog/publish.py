"""`exchange index --publish-branch`: commit a set of files as the whole tree of a branch and push it,
with git plumbing and a temporary index, so the current branch, index and work tree are never touched.

The branch's history continues from the remote's tip (else the local branch); a missing branch starts
as an orphan. An unchanged catalog makes no commit. Each publication is one new commit on top of the
remote's tip, pushed without force: a publication racing another is rejected, never overwrites it.
With `keep_other_files`, the files given replace theirs in the tip's tree and the others stay.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import git as gitpython

from .. import git
from ..commit_identity import commit_env
from ..errors import ExchangeError, UsageError


class PublishError(ExchangeError):
    pass


@dataclass(frozen=True)
class PublishOutcome:
    branch: str
    commit: str
    created_commit: bool
    pushed: bool


def publish_files(repo: gitpython.Repo, files: dict[str, str], *, branch: str, remote: str,
                  message: str, keep_other_files: bool = False) -> PublishOutcome:
    check_branch(repo, branch, remote)
    parent = _parent_commit(repo, remote, branch)
    tree = _write_tree(repo, files, base=parent if keep_other_files else None)
    if parent is not None and repo.git.rev_parse(f"{parent}^{{tree}}") == tree:
        commit, created = parent, False
    else:
        with repo.git.custom_environment(**commit_env(repo)):
            commit = repo.git.commit_tree(tree, *(["-p", parent] if parent else []), "-m", message)
        created = True
    repo.git.update_ref(f"refs/heads/{branch}", commit)
    pushed = git.remote_branch_commit(repo, remote, branch) != commit
    if pushed:
        try:
            repo.git.push("-q", remote, f"{commit}:refs/heads/{branch}")
        except gitpython.GitCommandError as error:
            raise PublishError(f"pushing {branch} to {remote} failed: {git.redact(str(error.stderr).strip())}") from None
    return PublishOutcome(branch, commit, created, pushed)


def check_branch(repo: gitpython.Repo, branch: str, remote: str, *, option: str = "--publish-branch") -> None:
    """A valid branch name, not the checked-out branch, and a remote to push to; else a UsageError."""
    try:
        repo.git.check_ref_format("--branch", branch)
    except gitpython.GitCommandError:
        raise UsageError(f"{option} {branch!r} is not a valid branch name") from None
    try:
        current = repo.active_branch.name
    except TypeError:
        current = None
    if branch == current:
        raise UsageError(f"{option} {branch} is the checked-out branch; publish the catalog to its own branch")
    if not git.has_remote(repo, remote):
        raise UsageError(f"no git remote {remote!r} to push the catalog to (use --remote)")


def _parent_commit(repo: gitpython.Repo, remote: str, branch: str) -> str | None:
    if git.remote_branch_commit(repo, remote, branch) is not None:
        return git.fetch_branch(repo, remote, branch)
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    except gitpython.GitCommandError:
        return None


def _write_tree(repo: gitpython.Repo, files: dict[str, str], *, base: str | None = None) -> str:
    with tempfile.TemporaryDirectory(prefix="exchange-publish-") as temp:
        staged = Path(temp) / "files"
        paths = sorted(files)
        for relative in paths:
            path = staged / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[relative], encoding="utf-8")
        blobs = repo.git.hash_object("-w", "--no-filters", "--", *(str(staged / p) for p in paths)).split() if paths else []
        index_info = Path(temp) / "index-info"
        index_info.write_text("".join(f"100644 {blob}\t{relative}\n" for blob, relative in zip(blobs, paths)),
                              encoding="utf-8")
        # Our own index file: the repository's index (what the user staged) stays as it is.
        with index_info.open("rb") as stream, repo.git.custom_environment(GIT_INDEX_FILE=os.path.join(temp, "index")):
            if base is not None:
                repo.git.read_tree(base)
            repo.git.update_index("--add", "--index-info", istream=stream)
            return repo.git.write_tree()
