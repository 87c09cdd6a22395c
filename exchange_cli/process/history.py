"""What has been processed, from git alone: every commit that added a manifest, newest first.

In a shallow clone the oldest commit (the clone boundary) has no parent, so every manifest older than
the clone seems added there: those rows are marked, and `History.shallow` tells the caller to warn or
to deepen the clone first (`deepen`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import git
from ..catalog.model import manifest_stem, unplaced_reason
from ..manifests import ManifestProblem, is_manifest_path, parse_manifest, read_git_blob
from ..repository import MANIFESTS, Exchange
from ..versions import version_key

_COMMIT, _FIELD = "\x1e", "\x1f"


@dataclass(frozen=True)
class ProcessedSpec:
    date: str  # ISO 8601, when the commit was made
    commit: str
    kind: str
    org: str
    name: str
    version: str
    manifest: str
    entry: str  # org/file-stem the manifest is named after (see catalog.model)
    at_clone_boundary: bool = False  # a shallow clone's oldest commit: the real date and commit are older

    @property
    def spec(self) -> str:
        return f"{self.kind} {self.org}/{self.name}" if self.org else f"{self.kind} {self.name}"


@dataclass
class History:
    entries: list[ProcessedSpec] = field(default_factory=list)
    problems: list[ManifestProblem] = field(default_factory=list)  # added files that are not readable manifests
    shallow: bool = False


def processed_history(exchange: Exchange, *, limit: int | None = None) -> History:
    log = exchange.repo.git.log("--diff-filter=A", "--name-only", "--no-renames",
                                f"--format={_COMMIT}%H{_FIELD}%cI", *([f"-{limit}"] if limit else []),
                                "--", f"{MANIFESTS}/")
    history = History(shallow=git.is_shallow(exchange.repo))
    boundary = shallow_boundary(exchange) if history.shallow else set()
    # Manifests are read as each commit added them (they may have been removed since).
    for chunk in log.split(_COMMIT)[1:]:
        header, *paths = [line for line in chunk.splitlines() if line.strip()]
        commit, date = header.split(_FIELD)
        tree = exchange.repo.commit(commit).tree
        for path in filter(is_manifest_path, paths):
            content = read_git_blob(tree[path])
            read = content if isinstance(content, ManifestProblem) else parse_manifest(path, content)
            if isinstance(read, ManifestProblem):
                history.problems.append(read)
            elif read.key is None:
                history.problems.append(ManifestProblem(path, unplaced_reason(read)))
            else:
                stem = manifest_stem(read) or read.key.name
                history.entries.append(ProcessedSpec(
                    date, commit, read.kind.value, read.org or "", read.key.name, read.key.version, path,
                    f"{read.org}/{stem}" if read.org else stem, commit in boundary))
    history.entries = _boundary_in_version_order(history.entries)
    return history


def _boundary_in_version_order(entries: list[ProcessedSpec]) -> list[ProcessedSpec]:
    """The clone boundary "adds" every older manifest at once, in file-name order: those rows are put in
    the order the catalog uses instead, each gear's versions newest first."""
    boundary = [entry for entry in entries if entry.at_clone_boundary]
    ordered = sorted(sorted(boundary, key=lambda e: version_key(e.version), reverse=True),
                     key=lambda e: (e.org, e.name, e.kind))
    return [entry for entry in entries if not entry.at_clone_boundary] + ordered


def shallow_boundary(exchange: Exchange) -> set[str]:
    shallow_file = Path(exchange.repo.git_dir) / "shallow"
    return set(shallow_file.read_text().split()) if shallow_file.is_file() else set()


def deepen(exchange: Exchange, remote: str) -> None:
    """Fetch the whole history of a shallow clone, so that every row has its real commit and date; a
    complete clone has it already (git refuses --unshallow there)."""
    if git.is_shallow(exchange.repo):
        git.unshallow(exchange.repo, remote)
