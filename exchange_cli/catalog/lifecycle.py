"""Yanked versions and deprecated gears: a maintainer's decisions, recorded beside the manifests, never in them.

A manifest is content-addressed (its file name carries its rootfs hash) and may be pinned by a signed
envelope, so a decision about it is not written into it. Each gear or boutique with a decision has one
small record file, ``.exchange/lifecycle/<kind>s/<org>/<name>.json`` (docs/yank.md)::

    {"kind": "gear", "org": "acme", "name": "hello",
     "yanked": {"1.0.0": {"reason": "...", "by": "Ada <ada@example.org>", "at": "2026-01-01T00:00:00Z"}},
     "deprecated": {"reason": "...", "replaced-by": "acme/hello2", "by": "...", "at": "..."}}

The path is made of NAMEs (names.as_name: a boutique's free-text name becomes a slug with a hash; an entry
without an org uses the folder `NO_ORG`, which no org can be called); the record repeats kind, org and
name as data, and a record that names another gear than its place is not applied. Reasons are data:
shown through quoting.printable, escaped in HTML. Everything under `.exchange/` is a protected path
(validation.target): a pull request cannot yank, unyank or deprecate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..confined import NotConfined, entries_below, read_below
from ..manifests import ManifestProblem
from ..names import as_name
from ..quoting import one_line
from ..specs import SpecKind

LIFECYCLE_DIR = ".exchange/lifecycle"
NO_ORG = ".no-org"  # not a NAME (it starts with '.'), so no org folder can take its place
MAX_RECORD_BYTES = 1 << 20
MAX_REASON_CHARACTERS = 500


@dataclass(frozen=True)
class Decision:
    """Who decided what, when, and why: one yanked version, or a gear's deprecation."""

    reason: str
    by: str  # the git identity that committed it: "Name <email>"
    at: str  # when, UTC, ISO 8601
    replaced_by: str | None = None  # deprecation only: the gear to use instead (ORG/NAME)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"reason": self.reason, "by": self.by, "at": self.at}
        if self.replaced_by is not None:
            document["replaced-by"] = self.replaced_by
        return document

    @classmethod
    def from_json(cls, value: object, where: str, *, deprecation: bool = False) -> Decision:
        if not isinstance(value, dict):
            raise RecordError(f"{where} is not an object")
        allowed = {"reason", "by", "at", *(["replaced-by"] if deprecation else [])}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise RecordError(f"{where} has unknown key(s) {', '.join(map(ascii, unknown))}")
        texts = {key: value.get(key) for key in ("reason", "by", "at")}
        wrong = [key for key, text in texts.items() if not isinstance(text, str) or not text.strip()]
        if wrong:
            raise RecordError(f"{where}: {', '.join(wrong)} must be non-empty text")
        replaced = value.get("replaced-by")
        if replaced is not None and not isinstance(replaced, str):
            raise RecordError(f"{where}: replaced-by must be text")
        return cls(texts["reason"], texts["by"], texts["at"], replaced)  # type: ignore[arg-type]

    def described(self) -> str:
        """One line for a terminal or a log (pass it through quoting.printable)."""
        replaced = f"; use {self.replaced_by} instead" if self.replaced_by else ""
        return f"{one_line(self.reason, MAX_REASON_CHARACTERS)}{replaced} ({self.at}, {self.by})"


def decision_warnings(ref: str, version: str | None, yank: Decision | None, deprecation: Decision | None) -> list[str]:
    """What a command using `ref`@`version` says on stderr: the version is yanked, the gear deprecated."""
    warnings = []
    if yank is not None:
        warnings.append(f"{ref}@{version} is yanked: {yank.described()}")
    if deprecation is not None:
        warnings.append(f"{ref} is deprecated: {deprecation.described()}")
    return warnings


class RecordError(Exception):
    """A record file that cannot be applied, and why (reported, never fatal to a reader)."""


GearKey = tuple[str | None, SpecKind, str]  # org, kind, name


@dataclass
class GearRecord:
    org: str | None
    kind: SpecKind
    name: str
    yanked: dict[str, Decision] = field(default_factory=dict)  # version -> decision
    deprecated: Decision | None = None

    @property
    def key(self) -> GearKey:
        return self.org, self.kind, self.name

    @property
    def empty(self) -> bool:
        return not self.yanked and self.deprecated is None

    def text(self) -> str:
        document: dict[str, Any] = {"kind": self.kind.value, "org": self.org, "name": self.name,
                                    "yanked": {version: decision.as_json() for version, decision in self.yanked.items()}}
        if self.deprecated is not None:
            document["deprecated"] = self.deprecated.as_json()
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def record_path(org: str | None, kind: SpecKind, name: str) -> str:
    """The repository-relative place of a gear's record: every component a NAME (or `NO_ORG`)."""
    return f"{LIFECYCLE_DIR}/{kind.directory}/{as_name(org) if org else NO_ORG}/{as_name(name)}.json"


def parse_record(content: bytes, key: GearKey) -> GearRecord:
    try:
        document = json.loads(content.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
    except (UnicodeDecodeError, ValueError) as error:
        raise RecordError(f"not UTF-8 JSON ({one_line(str(error), 120)})") from None
    if not isinstance(document, dict):
        raise RecordError("not a JSON object")
    org, kind, name = key
    if (document.get("org"), document.get("kind"), document.get("name")) != (org, kind.value, name):
        raise RecordError(f"it names another gear than the one its place is for ({kind.value} "
                          f"{org}/{name})")
    unknown = sorted(set(document) - {"kind", "org", "name", "yanked", "deprecated"})
    if unknown:
        raise RecordError(f"unknown key(s) {', '.join(map(ascii, unknown))}")
    yanked = document.get("yanked") or {}
    if not isinstance(yanked, dict):
        raise RecordError("yanked must be an object of versions")
    record = GearRecord(org, kind, name)
    record.yanked = {version: Decision.from_json(value, f"yanked {version!a}")
                     for version, value in yanked.items()}
    if document.get("deprecated") is not None:
        record.deprecated = Decision.from_json(document["deprecated"], "deprecated", deprecation=True)
    return record


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"the key {repeated[0]!a} is repeated")
    return dict(pairs)


@dataclass
class Lifecycle:
    """The records of one exchange, read on demand (one small file per gear that has one) and cached."""

    root: Path | None  # None: no exchange around (a manifest read from a URL): no decisions
    problems: list[ManifestProblem] = field(default_factory=list)
    _records: dict[GearKey, GearRecord | None] = field(default_factory=dict)
    _present: frozenset[str] | None = None  # the files under LIFECYCLE_DIR, listed once

    def _exists(self, relative: str) -> bool:
        """Whether a file is at `relative`: one listing of the (small, usually absent) folder, so a
        catalog of thousands of gears does not try thousands of opens for records that are not there."""
        if self._present is None:
            self._present = frozenset(self._listing())
        return relative in self._present

    def _listing(self) -> list[str]:
        assert self.root is not None
        place = self.root
        for part in LIFECYCLE_DIR.split("/"):  # a link on the way is named once, never followed
            place = place / part
            if place.is_symlink():
                self.problems.append(ManifestProblem(place.relative_to(self.root).as_posix(), "is a symbolic link; "
                                                     "no yank or deprecation is applied"))
                return []
            if not place.is_dir():
                return []
        # Links inside are listed as files: reading one reports it, never follows it.
        return [path.relative_to(self.root).as_posix() for path in entries_below(place, hidden=True)]

    def record(self, org: str | None, kind: SpecKind, name: str) -> GearRecord | None:
        key: GearKey = (org, kind, name)
        if key not in self._records:
            self._records[key] = self._read(key)
        return self._records[key]

    def yank(self, org: str | None, kind: SpecKind, name: str, version: str | None) -> Decision | None:
        record = self.record(org, kind, name)
        return record.yanked.get(version) if record is not None and version is not None else None

    def deprecation(self, org: str | None, kind: SpecKind, name: str) -> Decision | None:
        record = self.record(org, kind, name)
        return record.deprecated if record is not None else None

    def _read(self, key: GearKey) -> GearRecord | None:
        if self.root is None:
            return None
        relative = record_path(*key)
        if not self._exists(relative):
            return None
        try:
            content = read_below(self.root, relative, limit=MAX_RECORD_BYTES)
        except FileNotFoundError:
            return None
        except (NotConfined, OSError) as error:
            reason = error.reason if isinstance(error, NotConfined) else (error.strerror or type(error).__name__)
            self.problems.append(ManifestProblem(relative, f"{reason}; its yanks and deprecation are not applied"))
            return None
        try:
            return parse_record(content, key)
        except RecordError as error:
            self.problems.append(ManifestProblem(relative, f"{error}; its yanks and deprecation are not applied"))
            return None
