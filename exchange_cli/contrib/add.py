"""`exchange add-gear` / `add-boutique`: put a contributor's spec at ``<kind>s/<org>/<name>.json``,
validated exactly as CI will, and commit it. An invalid spec is never written."""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from .. import git
from ..commit_identity import commit_env
from ..errors import ExchangeError, UsageError
from ..manifests import ManifestIndex, write_atomically
from ..repository import Exchange
from ..jsonpos import parse_json
from ..specs import SpecFile, SpecKind, SpecLocation, image_field, read_spec
from ..validation.checker import Checker
from ..validation.policy import load_policy
from ..validation.problems import Report
from .source import SpecSource

_NOT_IN_FILE_NAME = re.compile(r"[^a-z0-9._-]+")


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
    location = SpecLocation(kind, choose_org(exchange, kind, name, org), name)
    text = json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    report = validate_candidate(exchange, location, text, source)
    if not report.ok:
        raise SpecRejected(location, report)
    target = exchange.root / location.relative_path
    old = current_text(exchange, location)
    diff = "".join(difflib.unified_diff(old.splitlines(keepends=True), text.splitlines(keepends=True),
                                        f"a/{location.relative_path}", f"b/{location.relative_path}"))
    if old == text:
        return AddOutcome(location, report, changed=False, diff="")
    message = commit_message(exchange, location, data)
    write_atomically(target, text)
    if not commit:
        return AddOutcome(location, report, changed=True, diff=diff)
    sha = git.commit_paths(exchange.repo, [location.relative_path], message, commit_env(exchange.repo))
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
    """The file stem: a gear's name as it is (its schema restricts it); a descriptor's name made file-safe."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ExchangeError(f"{shown}: the spec has no \"name\"; it names the file it is stored in")
    stem = name if kind is SpecKind.GEAR else _NOT_IN_FILE_NAME.sub("-", name.lower()).strip("-.")
    if not stem or "/" in stem or stem.startswith("."):
        raise ExchangeError(f"{shown}: the name {name!r} cannot name a file")
    return stem


def choose_org(exchange: Exchange, kind: SpecKind, name: str, org: str | None) -> str:
    """--org, else the one org that already has this spec (an update)."""
    if org is not None:
        if not org or "/" in org or org.startswith("."):
            raise UsageError(f"--org {org!r}: an org is one directory name")
        return org
    top = exchange.root / kind.directory
    owners = sorted(p.parent.name for p in top.glob(f"*/{name}.json")) if top.is_dir() else []
    if len(owners) == 1:
        return owners[0]
    found = f" ({', '.join(owners)} have one)" if owners else ""
    raise UsageError(f"which org does {name} belong to? pass --org ORG{found}")


def validate_candidate(exchange: Exchange, location: SpecLocation, text: str, source: SpecSource) -> Report:
    """The same rules `exchange validate` applies, on the text we would write; the problems are placed
    in the contributor's own file (the one they will edit), not in our reformatted copy."""
    spec = SpecFile(exchange.root / location.relative_path, location.relative_path, location.relative_path,
                    parse_json(text))
    item = Checker(ManifestIndex.load(exchange.manifests_dir), policy=load_policy(exchange.root)).check_file(spec)
    item.result.display_path = source.description
    for problem in item.result.problems:
        position = source.document.position(problem.pointer or "")
        problem.line, problem.column = position.line, position.column
    return Report([item.result])


def commit_message(exchange: Exchange, location: SpecLocation, data: dict[str, Any]) -> str:
    head = git.head_commit(exchange.repo)
    existed = head is not None and git.path_exists_at(exchange.repo, head, location.relative_path)
    noun = location.kind.value
    if not existed:
        return f"Add {location.stem} {noun}"
    return f"Update {location.stem} {noun} to {data.get(location.kind.version_key)}"
