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

from .. import __version__, git
from ..commit_identity import commit_env
from ..errors import Category, ExchangeError, UsageError, redact
from ..names import relative_path_problem
from ..quoting import printable
from ..specs import SPEC_DIRECTORIES


class PublishError(ExchangeError):
    """The catalog could not be published (the remote refused it): the environment, exit 2."""

    category = Category.ENVIRONMENT


@dataclass(frozen=True)
class PublishOutcome:
    branch: str
    commit: str
    created_commit: bool
    pushed: bool


# Publication commits say so: a later publication may supersede one that never reached the remote.
PUBLISHED_TRAILER = "Exchange-Published-By"

# A branch holding any of these, or specs under gears/ or boutiques/, is an exchange's source, not a place
# to publish a catalog (whose pages live under gears/ and boutiques/ too, as .html).
SOURCE_MARKERS = ("manifests", ".sentinel")


def publish_files(repo: gitpython.Repo, files: dict[str, str], *, branch: str, remote: str,
                  message: str, keep_other_files: bool = False) -> PublishOutcome:
    check_branch(repo, branch, remote)
    parent = _parent_commit(repo, remote, branch)
    local = _local_tip(repo, branch)
    for tip in {parent, local} - {None}:
        _check_not_source(repo, branch, tip)  # type: ignore[arg-type]
    if local is not None and parent is not None:
        _check_no_local_work(repo, branch, remote, local, parent)
    tree = _write_tree(repo, files, base=parent if keep_other_files else None)
    if parent is not None and repo.git.rev_parse(f"{parent}^{{tree}}") == tree:
        commit, created = parent, False
    else:
        with repo.git.custom_environment(**commit_env(repo)):
            commit = repo.git.commit_tree(tree, *(["-p", parent] if parent else []), "-m",
                                          f"{message}\n\n{PUBLISHED_TRAILER}: exchange-cli {__version__}")
        created = True
    repo.git.update_ref(f"refs/heads/{branch}", commit)
    pushed = git.remote_branch_commit(repo, remote, branch) != commit
    if pushed:
        try:
            repo.git.push("-q", remote, f"{commit}:refs/heads/{branch}")
        except git.GitFailed as error:
            raise PublishError(redact(f"pushing {branch} to {remote} failed: {git.failure_reason(error)}")) from None
    return PublishOutcome(branch, commit, created, pushed)


def check_branch(repo: gitpython.Repo, branch: str, remote: str, *, option: str = "--publish-branch") -> None:
    """A valid branch name, a remote to push to, and a branch that is none of the exchange's own: not the
    remote's default branch, not the checked-out branch; else a UsageError. `publish_files` also refuses
    a branch whose tip is related to the checked-out commit or holds the exchange's files."""
    try:
        repo.git.check_ref_format("--branch", branch)
    except git.GitFailed:
        raise UsageError(f"{option} {printable(branch)!r} is not a valid branch name") from None
    if branch.startswith("-") or not branch.isprintable():
        raise UsageError(f"{option} {printable(branch)!r} is not a valid branch name")
    try:
        current = repo.active_branch.name
    except TypeError:
        current = None
    if branch == current:
        raise UsageError(f"{option} {branch} is the checked-out branch; publish the catalog to its own branch")
    if not git.has_remote(repo, remote):
        raise UsageError(f"no git remote {remote!r} to push the catalog to (use --remote)")
    if branch == git.remote_default_branch(repo, remote):
        raise UsageError(f"{option} {branch} is the default branch of {remote}, which holds the exchange itself; "
                         "publish the catalog to its own branch (e.g. gh-pages)")


def _check_not_source(repo: gitpython.Repo, branch: str, tip: str) -> None:
    """Compare commits, not names: a detached HEAD on the exchange's branch has no branch name."""
    head = git.head_commit(repo)
    if head is not None and (git.is_ancestor(repo, tip, head) or git.is_ancestor(repo, head, tip)):
        raise UsageError(f"{branch} ({tip[:12]}) is in the history of the checked-out commit {head[:12]}: it is "
                         "the exchange's own branch; publish the catalog to its own branch")
    held = [path for path in SOURCE_MARKERS if git.path_exists_at(repo, tip, path)]
    held += [f"{directory}/…/*.json" for directory in SPEC_DIRECTORIES
             if any(path.endswith(".json") for path in git.tracked_paths(repo, tip, [directory]))]
    if held:
        raise UsageError(f"{branch} ({tip[:12]}) holds {', '.join(held)}: it is an exchange's source branch, and "
                         "publishing would replace its files; publish the catalog to its own branch")


def _check_no_local_work(repo: gitpython.Repo, branch: str, remote: str, local: str, parent: str) -> None:
    """The branch moves to the new publication on top of the remote's tip: a local commit the remote lacks
    would then be on no branch. An earlier publication that did not reach the remote is superseded (it
    carries PUBLISHED_TRAILER); anyone else's commit stops the publication, named."""
    if git.is_ancestor(repo, local, parent):
        return
    unpushed = repo.git.log("--format=%H%x1f%(trailers:key=" + PUBLISHED_TRAILER + ",valueonly)%x1f%s",
                            f"{parent}..{local}").splitlines()
    for line in unpushed:
        commit, trailer, subject = (line.split("\x1f") + ["", ""])[:3]
        if not trailer.strip():
            raise UsageError(printable(f"the local branch {branch} holds commit {commit[:12]} ({subject!r}), which "
                                       f"{remote} {branch} does not have; push it, or move it away (git branch -m "
                                       f"{branch} {branch}-local), before publishing"))


def _local_tip(repo: gitpython.Repo, branch: str) -> str | None:
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"))
    except git.GitFailed:
        return None


def _parent_commit(repo: gitpython.Repo, remote: str, branch: str) -> str | None:
    if git.remote_branch_commit(repo, remote, branch) is not None:
        return git.fetch_branch(repo, remote, branch)
    return _local_tip(repo, branch)


def _write_tree(repo: gitpython.Repo, files: dict[str, str], *, base: str | None = None) -> str:
    """The tree of `base` (or an empty one) with `files` in it. Every path is checked against the naming
    grammar, and the index is fed NUL-terminated records: no byte of a path can start another entry."""
    paths = sorted(files)
    for relative in paths:
        problem = relative_path_problem(relative)
        if problem is not None:
            raise PublishError(f"{printable(relative)!r} cannot be a file of the published tree: {problem}")
    with tempfile.TemporaryDirectory(prefix="exchange-publish-") as temp:
        staged = Path(temp) / "files"
        for relative in paths:
            path = staged / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[relative], encoding="utf-8")
        blobs = repo.git.hash_object("-w", "--no-filters", "--", *(str(staged / p) for p in paths)).split() if paths else []
        index_info = Path(temp) / "index-info"
        index_info.write_bytes(b"".join(b"100644 %s\t%s\0" % (blob.encode("ascii"), relative.encode("utf-8"))
                                        for blob, relative in zip(blobs, paths, strict=True)))
        # Our own index file: the repository's index (what the user staged) stays as it is.
        with index_info.open("rb") as stream, repo.git.custom_environment(GIT_INDEX_FILE=os.path.join(temp, "index")):
            if base is not None:
                repo.git.read_tree(base)
            repo.git.update_index("--add", "-z", "--index-info", istream=stream)
            return str(repo.git.write_tree())
