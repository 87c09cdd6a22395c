"""`exchange add-gear` / `add-boutique`: put a contributor's spec in its entry, validated exactly as CI
will, and commit it. An invalid spec is never written.

The entry (see catalog.model) is the spec file that already holds a gear of that name, whatever the
file is called (a new version of ``cpac`` goes to ``gears/acme/c-pac.json``); a new gear gets
``<kind>s/<org>/<name>.json``."""

from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass
from typing import Any

from .. import git
from ..catalog.model import EntryClaims, expected_stem
from ..commit_identity import commit_env
from ..committed import commit_changes
from ..durable import write_atomically
from ..errors import ExchangeError, UsageError
from ..jsonpos import parse_json
from ..manifests import ManifestIndex
from ..names import name_problem, suggested_name
from ..repository import Exchange
from ..specs import SpecFile, SpecKind, SpecLocation, image_field, read_spec
from ..validation.checker import Checker
from ..validation.policy import load_policy
from ..validation.problems import Report
from .source import SpecSource


class SpecRejected(ExchangeError):
    """The spec fails validation; `report` holds the problems. Nothing was written."""

    def __init__(self, location: SpecLocation, report: Report) -> None:
        super().__init__(f"{location.relative_path} was not written: it fails validation")
        self.report = report


@dataclass(frozen=True)
class AddOutcome:
    location: SpecLocation
    report: Report
    changed: bool
    diff: str
    commit: str | None = None
    message: str | None = None


def add_spec(exchange: Exchange, kind: SpecKind, source: SpecSource, *, org: str | None, image: str | None,
             commit: bool) -> AddOutcome:
    data = with_image(source.data, kind, image, source.description)
    name = spec_name(data, kind, source.description)
    manifests = ManifestIndex.load(exchange.manifests_dir)
    entries = EntryClaims.load(exchange, manifests.manifests)
    location = choose_entry(entries, kind, name, org)
    text = json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    report = validate_candidate(exchange, location, text, source, manifests, entries, image=image)
    if not report.ok:
        raise SpecRejected(location, report)
    target = exchange.root / location.relative_path
    old = current_text(exchange, location)
    diff = "".join(difflib.unified_diff(old.splitlines(keepends=True), text.splitlines(keepends=True),
                                        f"a/{location.relative_path}", f"b/{location.relative_path}"))
    if old == text:
        return AddOutcome(location, report, changed=False, diff="")
    message = commit_message(exchange, location, name, data)
    if not commit:
        write_atomically(target, text)
        return AddOutcome(location, report, changed=True, diff=diff)
    sha = commit_changes(exchange.repo, exchange.root, {location.relative_path: text}, message,
                         commit_env(exchange.repo))
    return AddOutcome(location, report, changed=True, diff=diff, commit=sha, message=message)


def current_text(exchange: Exchange, location: SpecLocation) -> str:
    """The spec now at `location` ('' when there is none). A link there, or on the way there, is
    neither read (the diff would show what it points to) nor written through."""
    try:
        spec = read_spec(exchange.root / location.relative_path, exchange.root)
    except FileNotFoundError:
        return ""
    if spec.refusal is not None:
        raise ExchangeError(f"not writing {location.relative_path}: {spec.refusal}")
    return spec.text


def with_image(data: dict[str, Any], kind: SpecKind, image: str | None, shown: str) -> dict[str, Any]:
    """The spec with ``--image`` set; without it, the spec must already name its image."""
    data = copy.deepcopy(data)
    if image is None:
        if image_field(data, kind)[1] is None:
            where = ("container-image.image" if kind is SpecKind.BOUTIQUE
                     else "custom.gear-builder.image or custom.docker-image")
            raise UsageError(f"{shown}: the spec names no image ({where}); pass --image REGISTRY/REPO:TAG")
        return data
    if kind is SpecKind.BOUTIQUE:
        container = data.setdefault("container-image", {"type": "docker"})
        if not isinstance(container, dict):
            raise ExchangeError(f"{shown}: \"container-image\" is not an object")
        container["image"] = image
        return data
    custom = data.setdefault("custom", {})
    if not isinstance(custom, dict):
        raise ExchangeError(f"{shown}: \"custom\" is not an object")
    custom["docker-image"] = image
    builder = custom.get("gear-builder")
    if isinstance(builder, dict) and "image" in builder:
        builder["image"] = image  # it takes precedence over docker-image: leaving it would ignore --image
    return data


def spec_name(data: dict[str, Any], kind: SpecKind, shown: str) -> str:
    """The spec's name, which must be able to name a new entry's file."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ExchangeError(f"{shown}: the spec has no \"name\"; it names the gear and its file")
    stem = expected_stem(name, kind)
    if not stem or "/" in stem or stem.startswith("."):
        raise ExchangeError(f"{shown}: the name {name!r} cannot name a file")
    return name


def choose_entry(entries: EntryClaims, kind: SpecKind, name: str, org: str | None) -> SpecLocation:
    """The entry that holds this gear already (in --org, else in any org); else a new one in --org."""
    problem = name_problem(org) if org is not None else None
    if problem is not None:
        raise UsageError(f"--org {org!r}: {problem}; an org names folders, manifests, objects and URLs "
                         f"(e.g. --org {suggested_name(org or '')})")
    found = entries.find(kind, name, org)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        shown = ", ".join(location.relative_path for location in found)
        raise UsageError(f"{kind.value} {name} is held by {shown}; pass --org ORG" if org is None else
                         f"{org}/{name} is held by more than one file ({shown}); `exchange validate` reports it")
    if org is None:
        raise UsageError(f"which org does {name} belong to? no {kind.value} of that name yet: pass --org ORG")
    return SpecLocation(kind, org, expected_stem(name, kind))


def validate_candidate(exchange: Exchange, location: SpecLocation, text: str, source: SpecSource,
                       manifests: ManifestIndex, entries: EntryClaims, *, image: str | None = None) -> Report:
    """The same rules `exchange validate` applies, on the text we would write; the problems are placed
    in the contributor's own file (the one they will edit), not in our reformatted copy, except those of
    a value an option gave (--image): those are blamed on the option, which is what must change."""
    spec = SpecFile(exchange.root / location.relative_path, location.relative_path, location.relative_path,
                    parse_json(text))
    item = Checker(manifests, entries=entries, policy=load_policy(exchange.root)).check_file(spec)
    item.result.display_path = source.description
    image_pointer = image_field(spec.data, location.kind)[0] if image is not None else None
    for problem in item.result.problems:
        if image_pointer is not None and problem.pointer == image_pointer:
            problem.message, problem.pointer = f"--image {image}: {problem.message}", None
            continue
        position = source.document.position(problem.pointer or "")
        problem.line, problem.column = position.line, position.column
    return Report([item.result])


def commit_message(exchange: Exchange, location: SpecLocation, name: str, data: dict[str, Any]) -> str:
    head = git.head_commit(exchange.repo)
    existed = head is not None and git.path_exists_at(exchange.repo, head, location.relative_path)
    noun = location.kind.value
    if not existed:
        return f"Add {name} {noun}"
    return f"Update {name} {noun} to {data.get(location.kind.version_key)}"
