"""A change to files of a work tree, committed as one commit or not at all.

The commands that record something in the exchange (`add-gear`, `yank` and its kin, `remove`, `keys init`,
`backfill-sbom`) write files and commit them. When the commit cannot be made (git's index.lock held by
another git, a full disk, Ctrl-C), the files written would stay modified and uncommitted, and the next
try would find its own change already there ("already yanked") with nothing committed. So the files are
put back as they were (their content, or their absence) and nothing of them stays staged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import git
from .durable import write_atomically
from .errors import ExchangeError

if TYPE_CHECKING:
    import git as gitpython


def commit_changes(repo: gitpython.Repo, root: Path, changes: Mapping[str, str | bytes | None], message: str,
                   env: dict[str, str], *, committed: Collection[str] | None = None) -> str:
    """Write each file of `changes` (paths relative to `root`; None deletes it) and commit those in
    `committed` (default: all of them) as one commit, which is returned. Should anything fail before the
    commit is made, every file is put back as it was and none stays staged."""
    before = {relative: _content(root / relative) for relative in changes}
    head = git.head_commit(repo)
    try:
        write_changes(root, changes)
        return git.commit_paths(repo, sorted(changes if committed is None else committed), message, env)
    except BaseException:
        if git.head_commit(repo) == head:  # not committed: the files and the index as they were
            write_changes(root, before)
            # Best effort: when git's index.lock was the failure, nothing of ours was staged.
            with contextlib.suppress(git.GitFailed, ExchangeError):
                git.unstage(repo, sorted(changes))
        raise


def _content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_changes(root: Path, changes: Mapping[str, str | bytes | None]) -> None:
    """Each file of `changes` written whole (write_atomically), or deleted (None); nothing committed."""
    for relative, content in changes.items():
        if content is None:
            (root / relative).unlink(missing_ok=True)
        else:
            write_atomically(root / relative, content)
