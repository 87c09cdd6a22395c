"""The catalog file the old pipeline published, ``exchange.json`` on the branch ``gh-pages-json``, as
platforms and web pages read it today.

The old pipeline built it with ``jq -S -s '[ .[].gear | del(.config, .inputs, .custom, .flywheel) ] |
del(.[] | nulls) | group_by(.name) | .[] |= sort_by(.version) | .[] |= reverse'`` over every file under
manifests/: a JSON array with one array per gear name (names in code-point order, orgs mixed as jq
mixed them), each holding that gear's embedded specs without ``config``, ``inputs``, ``custom`` and
``flywheel``, one per manifest, newest first. Only gear manifests (jq dropped the ``null`` of a boutique
manifest). Two differences, both deliberate: versions are ordered by `versions.version_key` (jq
compared them as strings, so ``0.10.0`` came before ``0.9.0``), and a manifest whose gear has no string
name or version, or that cannot be read, is left out and named (jq grouped it under ``null`` or failed).

A yanked version (catalog.lifecycle) is left out too: the old format has no place to say so, and its
readers take what it lists as installable, the first of a group as the newest. The version stays
published (its manifest and rootfs are untouched, fetchable by exact version); only this list stops
offering it. A deprecated gear stays listed as it was: deprecation warns, it withdraws nothing.

`publish_legacy_index` publishes it: see catalog.publish for how (plumbing only; the current branch,
index and work tree are never touched).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import git as gitpython

from .. import git
from ..errors import ExchangeError, redact
from ..manifests import ManifestProblem, ManifestScan, ProcessedManifest
from ..specs import SpecKind
from ..versions import SortKey, version_key
from .jq_format import jq_text
from .lifecycle import Lifecycle
from .model import unplaced_reason
from .publish import PublishOutcome, publish_files

LEGACY_INDEX_FILE = "exchange.json"
DROPPED_FIELDS = ("config", "inputs", "custom", "flywheel")
LEGACY_COMMIT_MESSAGE = "Add exchange.json"


@dataclass
class LegacyIndex:
    groups: list[list[dict[str, Any]]]
    left_out: list[ManifestProblem] = field(default_factory=list)
    yanked: list[str] = field(default_factory=list)  # manifests left out because their version is yanked

    @property
    def text(self) -> str:
        """Byte for byte the old program's output (`jq -S`, jq_format), but for the version order: so the
        first publication of an exchange the old pipeline grew changes only the groups it reorders."""
        return jq_text(self.groups)


def legacy_index(scan: ManifestScan, lifecycle: Lifecycle) -> LegacyIndex:
    by_name: dict[str, list[ProcessedManifest]] = defaultdict(list)
    left_out = list(scan.problems)
    yanked = []
    for manifest in scan.manifests:
        if manifest.kind is not SpecKind.GEAR:
            continue
        if manifest.name is None or manifest.version is None:
            left_out.append(ManifestProblem(manifest.relative, unplaced_reason(manifest)))
            continue
        if lifecycle.yank(manifest.org, manifest.kind, manifest.name, manifest.version) is not None:
            yanked.append(manifest.relative)
            continue
        by_name[manifest.name].append(manifest)
    groups = [[_summary(m) for m in sorted(group, key=_newest_first_key, reverse=True)]
              for _, group in sorted(by_name.items())]
    left_out += lifecycle.problems
    return LegacyIndex(groups, sorted(left_out, key=lambda problem: problem.path), sorted(yanked))


def _newest_first_key(manifest: ProcessedManifest) -> tuple[SortKey, str]:
    # Equal versions (one gear name in two orgs) in a fixed order: by path.
    return version_key(manifest.version or ""), manifest.relative


def _summary(manifest: ProcessedManifest) -> dict[str, Any]:
    return {key: value for key, value in manifest.spec.items() if key not in DROPPED_FIELDS}


@dataclass(frozen=True)
class CatalogPublication:
    """What publishing the catalog did; `error` is set when it failed (the next run retries)."""

    branch: str
    outcome: PublishOutcome | None = None
    error: str | None = None
    left_out: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.outcome is None:
            return f"catalog NOT published to {self.branch}: {self.error} (the next run retries)"
        state = "committed" if self.outcome.created_commit else "unchanged at"
        pushed = "pushed" if self.outcome.pushed else "the remote already has it"
        return f"catalog {LEGACY_INDEX_FILE} on {self.branch}: {state} {self.outcome.commit[:12]}, {pushed}"


def publish_legacy_index(repo: gitpython.Repo, scan: ManifestScan, lifecycle: Lifecycle, *, branch: str,
                         remote: str, source_commit: str) -> CatalogPublication:
    """Commit ``exchange.json`` to `branch` (keeping the branch's other files) and push it. Never raises
    for a failed publication: the caller's run is already published, and the next run retries."""
    index = legacy_index(scan, lifecycle)
    left_out = tuple(str(problem) for problem in index.left_out)
    try:
        outcome = publish_files(repo, {LEGACY_INDEX_FILE: index.text}, branch=branch, remote=remote,
                                message=f"{LEGACY_COMMIT_MESSAGE} ({source_commit[:12]})", keep_other_files=True)
    except (ExchangeError, git.GitFailed) as error:
        detail = redact(git.failure_reason(error)) if isinstance(error, git.GitFailed) else str(error)
        return CatalogPublication(branch, error=detail or type(error).__name__, left_out=left_out)
    return CatalogPublication(branch, outcome, left_out=left_out)
