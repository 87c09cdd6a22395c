"""Weakly-versioned specs as contributors submit them: where they live and what they say.

A spec lives at ``gears/<org>/<file>.json`` (a Flywheel gear manifest) or
``boutiques/<org>/<file>.json`` (a Boutiques descriptor). Its org and file stem name the artifact.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

from .confined import NotConfined, TooLarge, read_below, read_small_file
from .errors import UsageError
from .jsonpos import JsonText, read_json
from .names import is_name, name_problem, suggested_name

# A spec is a few kilobytes (the largest real gear manifests are under 100 KB); a file far past that is a
# mistake or an attack, and is refused from its size before it is read (rule spec-size).
MAX_SPEC_BYTES = 1024 * 1024


class SpecKind(str, Enum):
    GEAR = "gear"
    BOUTIQUE = "boutique"

    @property
    def directory(self) -> str:
        return f"{self.value}s"

    @property
    def version_key(self) -> str:
        """Boutiques version the tool itself; Flywheel gears version the gear."""
        return "version" if self is SpecKind.GEAR else "tool-version"


SPEC_DIRECTORIES = {kind.directory: kind for kind in SpecKind}


@dataclass(frozen=True)
class SpecLocation:
    """Where a spec sits in the exchange: ``<kind>s/<org>/<stem>.json``."""

    kind: SpecKind
    org: str
    stem: str

    @property
    def artifact_base(self) -> str:
        """``<org>-<name>``: the spec's path under gears/ or boutiques/ with '/' turned to '-'."""
        return f"{self.org}-{self.stem}"

    @property
    def relative_path(self) -> str:
        return f"{self.kind.directory}/{self.org}/{self.stem}.json"


def locate(relative_path: str) -> SpecLocation | None:
    """The location a repository-relative path stands for, or None when it is not a spec's place
    (`location_problem` says why). Its org and stem follow the naming grammar (`names`): they become
    manifest and object names, URLs and catalog pages."""
    parts = PurePosixPath(relative_path).parts
    if len(parts) != 3 or parts[0] not in SPEC_DIRECTORIES or not parts[2].endswith(".json"):
        return None
    stem = parts[2][: -len(".json")]
    if not is_name(parts[1]) or not is_name(stem):
        return None
    return SpecLocation(SPEC_DIRECTORIES[parts[0]], parts[1], stem)


def location_problem(relative_path: str) -> str:
    """Why `relative_path` is not a spec's place (for a path `locate` refuses)."""
    parts = PurePosixPath(relative_path).parts
    shape = (f"{ascii(relative_path)} is not at gears/<org>/<file>.json or boutiques/<org>/<file>.json")
    if len(parts) != 3 or parts[0] not in SPEC_DIRECTORIES or not parts[2].endswith(".json"):
        return shape
    for what, text in (("org", parts[1]), ("file name", parts[2][: -len(".json")])):
        problem = name_problem(text)
        if problem is not None:
            return (f"the {what} {ascii(text)} cannot name manifests, objects and URLs: {problem} "
                    f"(e.g. {suggested_name(text)!r})")
    return shape


def kind_of(data: Any, relative_path: str | None = None) -> SpecKind:
    """A spec's kind by where it lives, else by its content (for files outside a repository)."""
    if relative_path:
        top = PurePosixPath(relative_path).parts[0]
        if top in SPEC_DIRECTORIES:
            return SPEC_DIRECTORIES[top]
    if isinstance(data, dict) and ("command-line" in data or "schema-version" in data):
        return SpecKind.BOUTIQUE
    return SpecKind.GEAR


@dataclass
class SpecFile:
    """A spec file as read from disk. `refusal` says why it was not read at all (rule `refusal_rule`);
    otherwise `document` holds its text and, when that is readable JSON, its data."""

    path: Path
    display_path: str
    relative_path: str | None
    document: JsonText
    refusal: str | None = None
    refusal_rule: str = "spec-location"

    @classmethod
    def read(cls, path: Path, *, display_path: str, relative_path: str | None) -> SpecFile:
        """A JSON file the user names directly (an invocation, a spec for check-image), wherever it is: a
        regular file of at most MAX_SPEC_BYTES, else a UsageError (never /dev/zero read into memory)."""
        try:
            raw = read_small_file(path, limit=MAX_SPEC_BYTES)
        except NotConfined as error:  # TooLarge too
            raise UsageError(f"{display_path} {error.reason}; a spec or an invocation is a regular file of at most "
                             f"{MAX_SPEC_BYTES:,} bytes") from None
        except OSError as error:
            raise UsageError(f"{display_path}: cannot read: {error.strerror}") from None
        return cls(path, display_path, relative_path, read_json(raw))

    @property
    def text(self) -> str:
        return self.document.text

    @property
    def data(self) -> Any:
        return self.document.data

    @property
    def location(self) -> SpecLocation | None:
        return locate(self.relative_path) if self.relative_path else None

    @property
    def kind(self) -> SpecKind:
        return kind_of(self.data, self.relative_path)

    @property
    def name(self) -> str | None:
        value = self.data.get("name") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else None

    @property
    def version(self) -> str | None:
        value = self.data.get(self.kind.version_key) if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else None


def read_spec(path: Path, root: Path) -> SpecFile:
    """The one way a spec in the exchange is read (validate, process, the catalog, add-gear).

    A spec that is a symbolic link, lies below one, or is outside the repository is refused and never
    opened: its content would otherwise end up in CI logs. One larger than MAX_SPEC_BYTES is refused
    unread (spec-size). Any other file is read, and its JSON checked strictly (see jsonpos), so every
    reader sees the same data or the same problems.
    """
    shown = display_path(path)
    relative = repository_relative(path, root)
    if relative is None:
        return _refused(path, shown, None, f"{shown} is outside the repository {root}; specs live at "
                                           "gears/<org>/<file>.json or boutiques/<org>/<file>.json")
    try:
        raw = read_below(root, relative, limit=MAX_SPEC_BYTES)
    except TooLarge as error:
        return _refused(path, shown, relative, f"the file {error.reason}; a spec is a few kilobytes of JSON",
                        rule="spec-size")
    except NotConfined as error:
        return _refused(path, shown, relative, f"{error.place} {error.reason}; a spec must be a regular file "
                                               "inside the repository, and links are never followed")
    return SpecFile(path, shown, relative, read_json(raw))


def _refused(path: Path, shown: str, relative: str | None, reason: str, rule: str = "spec-location") -> SpecFile:
    return SpecFile(path, shown, relative, JsonText(""), refusal=reason, refusal_rule=rule)


def repository_relative(path: Path, root: Path) -> str | None:
    """`path` relative to the repository root as written, links not resolved; None when outside.

    Only the directories above the repository may be reached through links (e.g. /tmp ->
    /private/tmp); read_below refuses any below it.
    """
    absolute = Path(os.path.abspath(path))
    for base in (Path(os.path.abspath(root)), root.resolve()):
        if absolute.is_relative_to(base) and absolute != base:
            return absolute.relative_to(base).as_posix()
    parent = absolute.parent.resolve()
    if parent.is_relative_to(root.resolve()):
        return (parent.relative_to(root.resolve()) / absolute.name).as_posix()
    return None


def display_path(path: Path) -> str:
    """Relative to the working directory when below it, so editors and CI logs can open it. Links are
    not resolved: the message names the file the user has, not what it points to."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.getcwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


def image_field(data: Any, kind: SpecKind) -> tuple[str, Any]:
    """The JSON pointer of the field that names the spec's image, and its value (None when absent).

    Gears name it in ``custom.gear-builder.image``, older gears in ``custom.docker-image``;
    boutiques in ``container-image.image``.
    """
    if not isinstance(data, dict):
        return "", None
    if kind is SpecKind.BOUTIQUE:
        container = data.get("container-image")
        if isinstance(container, dict) and "image" in container:
            return "/container-image/image", container["image"]
        return "/container-image" if isinstance(container, dict) else "", None
    custom = data.get("custom")
    if not isinstance(custom, dict):
        return "", None
    builder = custom.get("gear-builder")
    if isinstance(builder, dict) and "image" in builder:
        return "/custom/gear-builder/image", builder["image"]
    if "docker-image" in custom:
        return "/custom/docker-image", custom["docker-image"]
    return "/custom", None


IMAGE_URL_SCHEMES_UNSUPPORTED = ("shub", "library", "oras")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class SpecImage:
    """The image a spec runs, as the exchange exports it.

    Boutiques write it in several ways: ``container-image.type: singularity`` with
    ``image: docker://org/img:tag`` (a Docker image, read as ``org/img:tag``), ``shub://``,
    ``library://`` and ``oras://`` sources (Singularity images: not exportable, `unsupported` says why),
    ``container-image.index`` (the registry, when the image names none) and ``container-hash`` (a
    digest that pins the image).
    """

    pointer: str  # JSON pointer of the field that names the image
    written: Any  # the value as written; None when absent
    reference: str | None = None  # the Docker reference to export; None when absent or unsupported
    unsupported: str | None = None  # why the image cannot be exported
    conflict: str | None = None  # container-hash and the image's own digest disagree


def spec_image(data: Any, kind: SpecKind) -> SpecImage:
    pointer, value = image_field(data, kind)
    if not isinstance(value, str):
        return SpecImage(pointer, value)
    if kind is SpecKind.GEAR:
        return SpecImage(pointer, value, value)
    container = data["container-image"]
    index = container.get("index")
    if isinstance(index, str) and index.strip().endswith("://") and "://" not in value:
        value_with_scheme, index = index.strip() + value, None  # a Singularity index: docker://, shub://
    else:
        value_with_scheme = value
    scheme, separator, rest = value_with_scheme.partition("://")
    if separator and scheme.lower() != "docker":
        kind_of_source = "a Singularity image source" if scheme.lower() in IMAGE_URL_SCHEMES_UNSUPPORTED else \
            f"a {scheme}:// source"
        return SpecImage(pointer, value, unsupported=f"{value_with_scheme!r} is {kind_of_source}, not a Docker image; "
                                                     "the exchange exports Docker/OCI images: use docker://REGISTRY/REPO:TAG")
    reference = _with_index(rest if separator else value, index)
    reference, conflict = _pinned(reference, container.get("container-hash"))
    return SpecImage(pointer, value, reference, conflict=conflict)


def _with_index(reference: str, index: Any) -> str:
    """The index is the registry when the reference names none (as Docker decides: a first component
    with a dot, a port or ``localhost`` is a host)."""
    if not isinstance(index, str) or not index.strip():
        return reference
    host = index.strip().split("://", 1)[-1].strip("/").split("/", 1)[0]
    first, slash, _ = reference.partition("/")
    names_registry = bool(slash) and ("." in first or ":" in first or first == "localhost")
    if names_registry or not host or host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return reference
    return f"{host}/{reference}"


def _pinned(reference: str, container_hash: Any) -> tuple[str, str | None]:
    if not isinstance(container_hash, str) or not container_hash.strip():
        return reference, None
    digest = container_hash.strip()
    digest = f"sha256:{digest}" if _HEX64.fullmatch(digest) else digest
    own = reference.partition("@")[2]
    if not own:
        return f"{reference}@{digest}", None
    if own.lower() != digest.lower():
        return reference, f"container-hash {container_hash!r} and the image's digest {own!r} disagree"
    return reference, None
