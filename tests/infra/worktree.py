"""A test run leaves nothing in the work tree: the session fails if `git status` differs after the run from
what it was before it. Comparing before with after (rather than asking for a clean tree) lets a developer
run the suite with changes of their own; a file a test leaves behind, or changes, is still caught, ignored
files too (a `build/` of screenshots was one): only the caches Python and pytest keep beside the code
(CACHES) may appear.

Registered as a plugin by tests/conftest.py; under pytest-xdist only the controller checks (the workers
share its work tree)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_SNAPSHOT = pytest.StashKey["WorkTree | None"]()
CACHES = {"__pycache__", ".pytest_cache"}  # written by the interpreter and by pytest itself, not by a test


@dataclass(frozen=True)
class WorkTree:
    """`git status` of a checkout, with a hash of every changed or untracked file's content: a file that
    was already modified and is modified again by the run keeps its status line but not its hash."""

    root: Path
    entries: dict[str, str]  # path -> status and content hash

    @classmethod
    def read(cls, root: Path) -> WorkTree | None:
        """None outside a git checkout (a source archive): nothing to compare."""
        listed = _status(root, "--untracked-files=all")
        # and what git ignores, an ignored directory as one entry (summed up by _tree_hash)
        ignored = _status(root, "--untracked-files=normal", "--ignored=traditional")
        if listed is None or ignored is None:
            return None
        top = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True,
                                  text=True, check=True).stdout.strip())
        entries: dict[str, str] = {}
        for status, path in [*listed, *(entry for entry in ignored if entry[0] == "!!")]:
            if status == "!!" and CACHES & set(Path(path).parts):
                continue
            entries[path] = f"{status} {_content_hash(top / path)}"
        return cls(top, entries)

    def changes_since(self, before: WorkTree) -> list[str]:
        """Each path whose status or content the run changed, as `git status` would show it now."""
        paths = sorted(set(before.entries) | set(self.entries))
        return [f"{self.entries.get(path, 'gone')[:2]} {path}" for path in paths
                if before.entries.get(path) != self.entries.get(path)]


def _status(root: Path, *options: str) -> list[tuple[str, str]] | None:
    """(status, path) of each entry `git status` lists with `options`; None outside a git checkout."""
    listed = subprocess.run(["git", "status", "--porcelain=v1", "-z", *options], cwd=root, capture_output=True,
                            check=False)
    if listed.returncode != 0:
        return None
    entries = []
    records = iter(listed.stdout.decode(errors="surrogateescape").split("\0"))
    for record in records:
        if not record:
            continue
        status, path = record[:2], record[3:]
        if "R" in status or "C" in status:
            next(records, None)  # a rename's second record is its old path
        entries.append((status, path))
    return entries


def _content_hash(path: Path) -> str:
    if path.is_symlink():
        return "link:" + str(path.readlink())
    if path.is_dir():  # an ignored directory (.venv, a build/ of an earlier run): what is in it, by size and time
        return "tree:" + _tree_hash(path)
    if not path.is_file():
        return "absent" if not path.exists() else "not-a-file"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for parent, directories, files in os.walk(directory):
        directories[:] = sorted(name for name in directories if name not in CACHES)
        for name in sorted(files):
            status = os.lstat(os.path.join(parent, name))
            digest.update(f"{os.path.relpath(os.path.join(parent, name), directory)}\0{status.st_size}\0"
                          f"{status.st_mtime_ns}\0".encode(errors="surrogateescape"))
    return digest.hexdigest()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_xdist_worker(session.config):
        session.config.stash[_SNAPSHOT] = WorkTree.read(session.config.rootpath)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_SNAPSHOT, None)
    if before is None or _is_xdist_worker(session.config):
        return
    after = WorkTree.read(before.root)
    changes = [] if after is None else after.changes_since(before)
    if not changes:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["the test run changed the work tree (tests write below tmp_path, never into the checkout):",
             *(f"  {change}" for change in changes)]
    if reporter is not None:
        reporter.write("\n")  # after the progress line, which does not end in one yet
        reporter.write_line("\n".join(lines), red=True)
    else:
        print("\n".join(lines))
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
