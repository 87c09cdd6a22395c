"""Thin helpers over git (through gitpython); every git question the tool asks is here."""

from __future__ import annotations

from pathlib import Path

import git

from .errors import UsageError


class NotARepository(UsageError):
    pass


def open_repo(path: Path | str | None = None) -> git.Repo:
    start = Path(path or ".").resolve()
    if not start.exists():
        raise UsageError(f"--repo {start}: no such directory")
    try:
        return git.Repo(start, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotARepository(f"{start} is not inside a git repository (use --repo DIR)") from None


def root(repo: git.Repo) -> Path:
    if repo.working_tree_dir is None:
        raise UsageError(f"{repo.git_dir} is a bare repository; an exchange needs a work tree")
    return Path(repo.working_tree_dir)


def resolve_commit(repo: git.Repo, rev: str, *, what: str) -> str:
    """The full hash of `rev`, or a UsageError that says where the revision came from."""
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}")
    except git.GitCommandError:
        hint = " (a shallow clone? fetch the full history)" if is_shallow(repo) else ""
        raise UsageError(f"{what} names {rev!r}, which is not a commit in this repository{hint}") from None


def is_shallow(repo: git.Repo) -> bool:
    return (Path(repo.git_dir) / "shallow").exists()


def changed_paths(repo: git.Repo, since: str, pathspecs: list[str]) -> list[str]:
    """Paths added or modified (not deleted) between `since` and the work tree, untracked included."""
    diff = repo.git.diff("--name-only", "--no-renames", "--diff-filter=AM", "-z", since, "--", *pathspecs)
    untracked = repo.git.ls_files("--others", "--exclude-standard", "-z", "--", *pathspecs)
    return sorted({p for p in (diff + "\0" + untracked).split("\0") if p})


def head_commit(repo: git.Repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except ValueError:  # no commits yet
        return None


def dirty_paths(repo: git.Repo) -> list[str]:
    status = repo.git.status("--porcelain", "-z", "--untracked-files=all")
    return [entry[3:] for entry in status.split("\0") if len(entry) > 3]
