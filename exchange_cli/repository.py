"""The exchange repository: its layout, the sentinel, and which specs a run looks at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

from . import git
from .confined import NotConfined, entries_below, read_below
from .errors import UsageError
from .specs import SPEC_DIRECTORIES

if TYPE_CHECKING:
    import git as gitpython

SENTINEL = ".sentinel"
MAX_SENTINEL_BYTES = 4096  # a commit id and a newline; anything larger is not one
MANIFESTS = "manifests"


@dataclass(init=False)
class Exchange:
    # The repository's read-only questions (what validate asks) go to git itself; `repo` is GitPython's Repo,
    # built on first use, for everything else. A GitPython Repo given here is wrapped.
    checkout: git.Checkout
    root: Path

    def __init__(self, checkout: git.Checkout | gitpython.Repo, root: Path) -> None:
        self.checkout = checkout if isinstance(checkout, git.Checkout) else git.Checkout.of_repo(checkout)
        self.root = root

    @classmethod
    def open(cls, path: Path | str | None = None) -> Exchange:
        checkout = git.Checkout.find(path)
        return cls(checkout, git.root(checkout))

    @property
    def repo(self) -> gitpython.Repo:
        """GitPython's Repo of the exchange (commits, pushes, blobs), opened on first use."""
        return self.checkout.repo

    @property
    def manifests_dir(self) -> Path:
        return self.root / MANIFESTS

    @property
    def sentinel_path(self) -> Path:
        return self.root / SENTINEL

    def read_sentinel(self) -> str | None:
        """The last processed commit, or None when the exchange has never been processed. Read as specs
        are: a link is named, never followed (its target could be any file of the machine)."""
        try:
            content = read_below(self.root, SENTINEL, limit=MAX_SENTINEL_BYTES)
        except FileNotFoundError:
            return None
        except NotConfined as refused:
            raise UsageError(f"{SENTINEL} {refused.reason}; it must be a regular file holding a commit id") from None
        try:
            text = content.decode("ascii").strip()
        except UnicodeDecodeError:
            raise UsageError(f"{SENTINEL} is not a commit id (it holds bytes that are not ASCII)") from None
        return text or None

    def relative(self, path: Path) -> str | None:
        """`path` relative to the repository root, POSIX style; None when it lies outside."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return None

    def all_spec_paths(self) -> list[Path]:
        paths: list[Path] = []
        for directory in SPEC_DIRECTORIES:
            top = self.root / directory
            if top.is_dir() and not top.is_symlink():
                paths.extend(entries_below(top))
            elif top.is_symlink():
                paths.append(top)  # reported (spec-location), never followed
        return sorted(paths)

    def established_spec_paths(self) -> set[str]:
        """Spec files already in the exchange: those at the sentinel commit (none without one)."""
        sentinel = self.read_sentinel()
        if sentinel is None:
            return set()
        commit = git.resolve_commit(self.checkout, sentinel, what=SENTINEL)
        return {p for p in git.tracked_paths(self.checkout, commit, list(SPEC_DIRECTORIES))
                if not _hidden_spec_path(p)}

    def unchanged_spec_paths(self, since: str) -> frozenset[str]:
        """Spec files (repository-relative) whose content is what it was at `since` (a revision)."""
        commit = git.resolve_commit(self.checkout, since, what=SENTINEL)
        at_commit = git.tracked_paths(self.checkout, commit, list(SPEC_DIRECTORIES))
        return frozenset(at_commit - set(git.changed_paths(self.checkout, commit, list(SPEC_DIRECTORIES))))

    def changed_spec_paths(self, since: str | None) -> list[Path]:
        """Specs added or modified since `since` (else since the sentinel); all specs when neither exists."""
        if since is None:
            since = self.read_sentinel()
            if since is None:
                return self.all_spec_paths()
            commit = git.resolve_commit(self.checkout, since, what=f"{SENTINEL}")
        else:
            commit = git.resolve_commit(self.checkout, since, what="--since")
        changed = git.changed_paths(self.checkout, commit, list(SPEC_DIRECTORIES))
        # The same files --all would look at: hidden ones (.gitkeep, .placeholder) are not specs.
        return [self.root / p for p in changed
                if ((self.root / p).is_file() or (self.root / p).is_symlink()) and not _hidden_spec_path(p)]

    def expand(self, paths: list[Path]) -> list[Path]:
        """Explicit PATH arguments: files as given, directories by the files under them."""
        expanded: list[Path] = []
        for path in paths:
            if path.is_dir() and not path.is_symlink():
                expanded.extend(entries_below(path))
            elif path.is_file() or path.is_symlink():
                expanded.append(path)
            else:
                raise UsageError(f"{path}: no such file or directory")
        return expanded


def _hidden(relative: PurePath) -> bool:
    """A hidden file, or a file in a hidden folder, below the folder `relative` is relative to."""
    return any(part.startswith(".") for part in relative.parts)


def _hidden_spec_path(relative: str) -> bool:
    """The same rule for a repository-relative path under gears/ or boutiques/."""
    return _hidden(PurePosixPath(*PurePosixPath(relative).parts[1:]))
