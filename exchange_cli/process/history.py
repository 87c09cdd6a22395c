"""What has been processed, from git alone: every commit that added a manifest, newest first."""

from __future__ import annotations

from dataclasses import dataclass

from ..manifests import ManifestProblem, is_manifest_path, parse_manifest
from ..repository import MANIFESTS, Exchange

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

    @property
    def spec(self) -> str:
        return f"{self.kind} {self.org}/{self.name}"


def processed_history(exchange: Exchange, *, limit: int | None = None) -> list[ProcessedSpec]:
    log = exchange.repo.git.log("--diff-filter=A", "--name-only", "--no-renames",
                                f"--format={_COMMIT}%H{_FIELD}%cI", *([f"-{limit}"] if limit else []),
                                "--", f"{MANIFESTS}/")
    entries: list[ProcessedSpec] = []
    # Manifests are read as each commit added them (they may have been removed since).
    for chunk in log.split(_COMMIT)[1:]:
        header, *paths = [line for line in chunk.splitlines() if line.strip()]
        commit, date = header.split(_FIELD)
        entries += [entry for path in paths if (entry := _entry(exchange, commit, date, path))]
    return entries


def _entry(exchange: Exchange, commit: str, date: str, path: str) -> ProcessedSpec | None:
    """None for files under manifests/ that are not manifests (a README, a broken file)."""
    if not is_manifest_path(path):
        return None
    manifest = parse_manifest(path, exchange.repo.commit(commit).tree[path].data_stream.read())
    if isinstance(manifest, ManifestProblem) or manifest.key is None:
        return None
    key = manifest.key
    return ProcessedSpec(date, commit, key.kind.value, key.org or "", key.name, key.version, path)
