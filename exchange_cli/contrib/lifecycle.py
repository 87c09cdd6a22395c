"""`exchange yank`, `unyank` and `deprecate`: a maintainer's decision, recorded in one commit of one small
record file (catalog.lifecycle), with who and when. Nothing is deleted: not a manifest, not an object."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import git
from ..catalog.lifecycle import MAX_REASON_CHARACTERS, Decision, GearRecord, record_path
from ..catalog.model import Catalog, CatalogEntry
from ..catalog.reference import EntryReference, NotInCatalog, resolve, unique_reference
from ..commit_identity import author_now, commit_env
from ..committed import commit_changes
from ..errors import UsageError
from ..quoting import one_line, printable
from ..repository import Exchange


class DecisionConflict(UsageError):
    """Yanking what is yanked, unyanking what is not, deprecating twice: nothing changed (exit 2)."""


@dataclass(frozen=True)
class LifecycleChange:
    action: str  # yank, unyank, deprecate, undeprecate
    entry: CatalogEntry
    version: str | None  # yank and unyank
    decision: Decision | None  # what was decided (for unyank and undeprecate: what is lifted)
    record: GearRecord  # the gear's record after the change (empty: the file goes)

    @property
    def path(self) -> str:
        return record_path(*self.record.key)

    @property
    def message(self) -> str:
        what = f"{self.entry.kind.value} {self.entry.ref}" + (f" {self.version}" if self.version else "")
        reason = f": {one_line(self.decision.reason, 200)}" if self.decision and self.action in ("yank", "deprecate") else ""
        return f"{self.action.capitalize()} {what}{reason}"


def check_reason(reason: str) -> str:
    """A reason is shown in terminals, catalogs and commit messages: printable text of bounded length."""
    text = reason.strip()
    if not text:
        raise UsageError("--reason is empty: say why (it is shown wherever the version or gear is)")
    if len(text) > MAX_REASON_CHARACTERS:
        raise UsageError(f"--reason is {len(text)} characters long, over {MAX_REASON_CHARACTERS}")
    if printable(text) != text:
        raise UsageError(f"--reason holds a control or format character ({printable(text)[:80]}); "
                         "write it as plain text")
    return text


def plan_yank(exchange: Exchange, catalog: Catalog, entry: CatalogEntry, version: str, reason: str) -> LifecycleChange:
    found = entry.version(version)
    if found is None:
        available = ", ".join(v.version for v in entry.versions) or "none"
        raise NotInCatalog(f"{entry.ref} has no version {version} (versions: {available})")
    if not found.processed:
        raise NotInCatalog(f"{entry.ref}@{version} is not processed: nothing is published to yank "
                           "(change or remove its spec instead)")
    record = _current(catalog, entry)
    if version in record.yanked:
        raise DecisionConflict(printable(f"{entry.ref}@{version} is already yanked: "
                                         f"{record.yanked[version].described()}"))
    decision = _decided(exchange, check_reason(reason))
    return LifecycleChange("yank", entry, version, decision,
                           replace(record, yanked={**record.yanked, version: decision}))


def plan_unyank(catalog: Catalog, entry: CatalogEntry, version: str) -> LifecycleChange:
    record = _current(catalog, entry)
    if version not in record.yanked:
        known = entry.version(version) is not None
        if not known:
            available = ", ".join(v.version for v in entry.versions) or "none"
            raise NotInCatalog(f"{entry.ref} has no version {version} (versions: {available})")
        raise DecisionConflict(f"{entry.ref}@{version} is not yanked; nothing to unyank")
    yanked = {v: d for v, d in record.yanked.items() if v != version}
    return LifecycleChange("unyank", entry, version, record.yanked[version], replace(record, yanked=yanked))


def plan_deprecation(exchange: Exchange, catalog: Catalog, entry: CatalogEntry, reason: str,
                     replaced_by: str | None) -> LifecycleChange:
    record = _current(catalog, entry)
    if record.deprecated is not None:
        raise DecisionConflict(printable(f"{entry.ref} is already deprecated: {record.deprecated.described()} "
                                         "(deprecate --undo first to change it)"))
    successor = None
    if replaced_by is not None:
        other = resolve(catalog, EntryReference.parse(replaced_by)).entry
        if other is entry:
            raise UsageError(f"--replaced-by {replaced_by} names {entry.ref} itself")
        successor = unique_reference(catalog, other)
    decision = replace(_decided(exchange, check_reason(reason)), replaced_by=successor)
    return LifecycleChange("deprecate", entry, None, decision, replace(record, deprecated=decision))


def plan_undeprecation(catalog: Catalog, entry: CatalogEntry) -> LifecycleChange:
    record = _current(catalog, entry)
    if record.deprecated is None:
        raise DecisionConflict(f"{entry.ref} is not deprecated; nothing to undo")
    return LifecycleChange("undeprecate", entry, None, record.deprecated, replace(record, deprecated=None))


def apply_change(exchange: Exchange, change: LifecycleChange) -> str:
    """Write (or, when nothing is left in it, delete) the record and commit exactly it; the commit."""
    content = None if change.record.empty else change.record.text()
    return commit_changes(exchange.repo, exchange.root, {change.path: content}, change.message,
                          commit_env(exchange.repo))


class DecisionNotPushed(UsageError):
    """The decision is committed here, but the remote refused it (exit 2)."""


def push_change(exchange: Exchange, remote: str) -> str:
    """Push the branch, so clones and the next catalog see the decision; the branch pushed."""
    branch = git.current_branch(exchange.repo)
    try:
        git.push(exchange.repo, remote, branch)
    except git.PushRejected as rejected:
        raise DecisionNotPushed(f"the decision is committed here but {remote} refused it ({rejected.one_line}); "
                                "pull and push it") from None
    return branch


def _current(catalog: Catalog, entry: CatalogEntry) -> GearRecord:
    """The entry's record as it stands; one that cannot be read is never overwritten blindly."""
    path = record_path(entry.org, entry.kind, entry.name)
    # The record itself, or a folder on its way (a link: writing there would write elsewhere).
    unreadable = [problem for problem in catalog.lifecycle.problems
                  if problem.path == path or path.startswith(f"{problem.path}/")]
    if unreadable:
        raise UsageError(printable(f"{unreadable[0]}: fix or delete it first"))
    found = catalog.lifecycle.record(entry.org, entry.kind, entry.name)
    return found if found is not None else GearRecord(entry.org, entry.kind, entry.name)


def _decided(exchange: Exchange, reason: str) -> Decision:
    by, at = author_now(exchange.repo)
    return Decision(reason, by, at)
