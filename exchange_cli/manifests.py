"""Strongly-versioned manifests: ``manifests/<org>/<org>-<file stem>-<algo>-<hex>.json``.

The layout and top-level shape are those existing exchanges already use, so their manifests are read as
they are. The name holds the rootfs hash, not the version: when a later version of the same entry has a
byte-identical rootfs (a spec-only change over the same image), its manifest is
``<org>-<file stem>@<version>-<algo>-<hex>.json`` instead (see `ManifestFileName`), so that no version
ever replaces another's manifest. Top-level shape:
``{"gear"|"boutique": <spec>, "exchange": {...}, "invocation-schema": {...}}``. Exchanges grown by the
old pipeline also keep manifests directly under ``manifests/`` (a spec that had no org folder) and under
deeper folders (``manifests/<org>/<sub>/…``), embed specs whose name or version is not a string, and
carry only ``git-commit``, ``rootfs-hash`` and ``rootfs-url``: every ``*.json`` under ``manifests/`` is
read, at any depth, and each file that cannot be read is returned as a `ManifestProblem` (never silently
skipped), so that a caller deciding what is referenced knows when it cannot know.

Readers: `load_manifests` (a directory on disk) and `read_manifest_blobs` (``(path, bytes)`` pairs, e.g.
the blobs of a git tree, see `manifests_at_commit`); both return a `ManifestScan`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .confined import NotConfined, TooLarge, entries_below, read_below
from .jsonpos import read_json
from .specs import MAX_SPEC_BYTES, SpecKind

MANIFESTS_DIRECTORY = "manifests"
# A manifest embeds one spec (at most MAX_SPEC_BYTES) and its invocation schema, indented: generous room,
# yet a committed multi-gigabyte file is refused from its size, not read into memory.
MAX_MANIFEST_BYTES = 32 * MAX_SPEC_BYTES
_GIT_LINK_MODE = 0o120000
_LINK = "is a symbolic link"
IMAGE_URL_SCHEME = "docker"  # rootfs-url docker://…: an image-delivered gear, nothing in the bucket
VERSION_QUALIFIER = "@"  # <org>-<stem>@<version>: as every command names a version, ORG/NAME@VERSION
_MANIFEST_FILE = re.compile(r"(?P<base>.+)-(?P<algorithm>sha\d+)-(?P<hex>[0-9a-fA-F]+)\.json")


@dataclass(frozen=True)
class VersionKey:
    """A version's identity: the spec's name and version within its org (the old pipeline's rule)."""

    org: str | None
    kind: SpecKind
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.org}/{self.name} {self.version}" if self.org else \
            f"{self.kind.value} {self.name} {self.version}"


@dataclass(frozen=True)
class ManifestProblem:
    """A file under manifests/ that cannot be read as a manifest, and why."""

    path: str  # repository-relative, POSIX: manifests/…
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ProcessedManifest:
    path: Path
    relative: str  # repository-relative, POSIX: manifests/<org>/…
    kind: SpecKind
    spec: dict[str, Any]
    exchange: dict[str, Any]
    invocation_schema: Any = None

    @property
    def org(self) -> str | None:
        """The first folder under manifests/; None for a manifest stored directly there."""
        parts = PurePosixPath(self.relative).parts
        return parts[1] if len(parts) >= 3 else None

    @property
    def name(self) -> str | None:
        value = self.spec.get("name")
        return value if isinstance(value, str) else None

    @property
    def version(self) -> str | None:
        value = self.spec.get(self.kind.version_key)
        return value if isinstance(value, str) else None

    @property
    def key(self) -> VersionKey | None:
        """None when the embedded spec has no string name or version (some old manifests)."""
        if self.name is None or self.version is None:
            return None
        return VersionKey(self.org, self.kind, self.name, self.version)

    @property
    def file_name(self) -> ManifestFileName | None:
        """Its file name read as ``<base>[@<version>]-<algo>-<hex>.json``; None for a file not named so."""
        return ManifestFileName.parse(self.path.name, self.version)

    @property
    def rootfs_hash(self) -> str | None:
        value = self.exchange.get("rootfs-hash")
        return value if isinstance(value, str) else None

    @property
    def rootfs_url(self) -> str | None:
        value = self.exchange.get("rootfs-url")
        return value if isinstance(value, str) and value else None

    @property
    def is_image(self) -> bool:
        """Delivered as an image (``rootfs-url: docker://…``), not as a bucket object."""
        return self.rootfs_url is not None and urlsplit(self.rootfs_url).scheme == IMAGE_URL_SCHEME

    @property
    def rootfs_sha384(self) -> str | None:
        """The hex sha384 of the rootfs, which the bucket holds; None for other kinds of artifact."""
        value = self.rootfs_hash
        if value is not None and value.lower().startswith("sha384:"):
            return value[len("sha384:"):].lower()
        return None

    @property
    def bucket_object(self) -> str | None:
        """The bucket object this manifest references: the last segment of its rootfs URL (whatever its
        host), else ``<file stem>.tgz`` for a sha384 rootfs; None for an image or a manifest that names none."""
        if self.is_image:
            return None
        if self.rootfs_url is not None:
            name = unquote(PurePosixPath(urlsplit(self.rootfs_url).path).name)
            if name:
                return name
        if self.rootfs_sha384 is not None:
            named = self.file_name
            return f"{named.object_stem if named is not None else self.path.stem}.tgz"
        return None

    @property
    def attestation_object(self) -> str | None:
        """The bucket object holding the artifact's signed provenance (attestation-url's last segment)."""
        return self._object_named_by("attestation-url")

    @property
    def attestation_sha256(self) -> str | None:
        """The sha256 hex of the envelope the manifest pins (attestation-sha256)."""
        return self._sha256_at("attestation-sha256")

    @property
    def sbom_object(self) -> str | None:
        """The bucket object holding the rootfs's SBOM (sbom-url's last segment); None for an older manifest."""
        return self._object_named_by("sbom-url")

    @property
    def sbom_sha256(self) -> str | None:
        """The sha256 hex of the SBOM the manifest pins (sbom-sha256)."""
        return self._sha256_at("sbom-sha256")

    @property
    def squashfs_object(self) -> str | None:
        """The bucket object holding the squashfs image (squashfs-url's last segment); None without one."""
        return self._object_named_by("squashfs-url")

    def _object_named_by(self, key: str) -> str | None:
        """The last segment of the URL at `key` of the exchange block, whatever its host."""
        url = self.exchange.get(key)
        if not isinstance(url, str) or not url:
            return None
        return unquote(PurePosixPath(urlsplit(url).path).name) or None

    def _sha256_at(self, key: str) -> str | None:
        value = self.exchange.get(key)
        return value.lower() if isinstance(value, str) and value else None

    @property
    def bucket_objects(self) -> tuple[str, ...]:
        """Every bucket object this manifest references: its rootfs, its attestation, its SBOM and its
        squashfs image."""
        return tuple(name for name in (self.bucket_object, self.attestation_object, self.sbom_object,
                                       self.squashfs_object) if name is not None)


@dataclass
class ManifestScan:
    """Every manifest read, and every file under manifests/ that could not be."""

    manifests: list[ProcessedManifest] = field(default_factory=list)
    problems: list[ManifestProblem] = field(default_factory=list)

    def referenced_objects(self) -> set[str]:
        """Bucket objects some manifest references. Incomplete when `problems` is not empty."""
        return {name for m in self.manifests for name in m.bucket_objects}


def manifest_name(artifact_base: str, rootfs_hash: str) -> str:
    """``<org>-<name>-sha384-<hex>.json`` from ``sha384:<hex>`` (or ``sha256:`` for image-delivered gears)."""
    algorithm, hex_digest = rootfs_hash.split(":", 1)
    return f"{artifact_base}-{algorithm}-{hex_digest}.json"


def version_in_name(version: str) -> str:
    """A version as it appears in a file name: as written when it is made of letters, digits and
    ``. _ - ~ +``, every other byte percent-encoded (so ``/`` and ``@`` cannot appear, and two
    versions never give one name)."""
    return quote(version, safe="+")


def qualified_manifest_path(relative: str, version: str) -> str:
    """The version-qualified form of a manifest path named the old way: ``…/<base>-<algo>-<hex>.json``
    -> ``…/<base>@<version>-<algo>-<hex>.json``. Used for a version whose rootfs another version's
    manifest already names."""
    path = PurePosixPath(relative)
    match = _MANIFEST_FILE.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{relative} is not named <base>-<algo>-<hex>.json")
    name = f"{match['base']}{VERSION_QUALIFIER}{version_in_name(version)}-{match['algorithm']}-{match['hex']}.json"
    return str(path.with_name(name))


@dataclass(frozen=True)
class ManifestFileName:
    """A manifest's file name read: ``<base>-<algo>-<hex>.json`` (the old pipeline's), or
    ``<base>@<version>-<algo>-<hex>.json`` for a version that shares its rootfs with an older one.

    The qualifier is recognised only when it is the manifest's own version, so an old file whose stem
    happens to contain ``@`` is still read the old way."""

    base: str  # <org>-<stem> (or the stem alone directly under manifests/), qualifier removed
    version: str | None  # the version in the name; None for the old pipeline's name
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, file_name: str, version: str | None) -> ManifestFileName | None:
        match = _MANIFEST_FILE.fullmatch(file_name)
        if match is None:
            return None
        base, qualifier = match["base"], None
        if version is not None:
            suffix = VERSION_QUALIFIER + version_in_name(version)
            if base.endswith(suffix) and len(base) > len(suffix):
                base, qualifier = base[: -len(suffix)], version
        return cls(base, qualifier, match["algorithm"], match["hex"])

    @property
    def object_stem(self) -> str:
        """``<base>-<algo>-<hex>``: what the rootfs object is named after, whichever version's manifest."""
        return f"{self.base}-{self.algorithm}-{self.hex}"


def embedded_spec(document: Any) -> tuple[SpecKind, Any] | None:
    if not isinstance(document, dict):
        return None
    for kind in SpecKind:
        if isinstance(document.get(kind.value), dict):
            return kind, document[kind.value]
    return None


def is_manifest_path(relative: str) -> bool:
    """Every ``*.json`` below manifests/, at any depth."""
    parts = PurePosixPath(relative).parts
    return len(parts) >= 2 and parts[0] == MANIFESTS_DIRECTORY and parts[-1].endswith(".json")


def parse_manifest(relative: str, content: bytes, path: Path | None = None) -> ProcessedManifest | ManifestProblem:
    """One manifest from its bytes; `relative` is its repository-relative path (manifests/…)."""
    # Read as specs are (jsonpos): a lone surrogate, NaN, a duplicate key or 10,000 levels of nesting would
    # otherwise pass json.loads and break a writer or a recursive reader later (index -o, the catalog).
    read = read_json(content)
    if not read.ok:
        problem = read.problems[0]
        return ManifestProblem(relative, f"not valid JSON (line {problem.position.line}, column "
                                         f"{problem.position.column}: {problem.message})")
    document = read.data
    found = embedded_spec(document)
    if found is None:
        return ManifestProblem(relative, "not a manifest: no \"gear\" or \"boutique\" object")
    kind, spec = found
    exchange = document.get("exchange", {})
    if not isinstance(exchange, dict):
        return ManifestProblem(relative, "its \"exchange\" block is not an object")
    for key in ("rootfs-url", "rootfs-hash"):
        if key in exchange and not isinstance(exchange[key], str):
            return ManifestProblem(relative, f"its exchange.{key} is not a string")
    return ProcessedManifest(path or Path(relative), relative, kind, spec, exchange, document.get("invocation-schema"))


def read_manifest_blobs(items: Iterable[tuple[str, bytes | ManifestProblem]], *,
                        root: Path | None = None) -> ManifestScan:
    """Manifests from ``(repository-relative path, bytes)`` pairs (or the problem met reading them); paths
    that are not ``manifests/**/*.json`` are ignored. With `root`, each manifest's `path` is ``root / relative``."""
    scan = ManifestScan()
    for relative, content in sorted(items, key=lambda item: item[0]):
        if isinstance(content, ManifestProblem):
            scan.problems.append(content)
            continue
        if not is_manifest_path(relative):
            continue
        read = parse_manifest(relative, content, root / relative if root is not None else None)
        (scan.problems if isinstance(read, ManifestProblem) else scan.manifests).append(read)  # type: ignore[arg-type]
    return scan


def load_manifests(manifests_dir: Path) -> ManifestScan:
    """Every ``*.json`` under `manifests_dir` (the exchange's manifests/), at any depth.

    Read as specs are (confined.read_below): a link anywhere under manifests/ (or manifests/ itself) is
    never followed but named as a problem, as is a file over MAX_MANIFEST_BYTES, so that nothing outside
    the repository is read and a caller deciding what is referenced knows it cannot know."""
    root = manifests_dir.parent
    if manifests_dir.is_symlink():
        return ManifestScan(problems=[_not_read(MANIFESTS_DIRECTORY, MANIFESTS_DIRECTORY, _LINK)])
    if not manifests_dir.is_dir():
        return ManifestScan()

    def blobs() -> Iterable[tuple[str, bytes | ManifestProblem]]:
        for path in entries_below(manifests_dir, hidden=True):
            relative = f"{MANIFESTS_DIRECTORY}/{path.relative_to(manifests_dir).as_posix()}"
            if path.is_symlink():
                yield relative, _not_read(relative, relative, _LINK)
            elif is_manifest_path(relative):
                yield relative, _read_confined(root, relative)

    return read_manifest_blobs(list(blobs()), root=root)


def _read_confined(root: Path, relative: str) -> bytes | ManifestProblem:
    try:
        return read_below(root, relative, limit=MAX_MANIFEST_BYTES)
    except NotConfined as error:
        return _not_read(relative, error.place, error.reason)
    except OSError as error:
        return ManifestProblem(relative, f"cannot read: {error.strerror or error}")


def _not_read(relative: str, place: str, reason: str) -> ManifestProblem:
    where = "" if place == relative else f"{place} "
    why = "links under manifests/ are never followed" if "link" in reason else "not read"
    return ManifestProblem(relative, f"{where}{reason}; {why}")


def manifests_at_commit(repo: Any, commit: str) -> ManifestScan:
    """The manifests as they are in `commit` of a gitpython repo (paths under the work tree's root)."""
    from . import git

    root = Path(repo.working_tree_dir) if repo.working_tree_dir else None
    return read_manifest_blobs(((str(blob.path), read_git_blob(blob)) for blob in
                                git.blobs_at(repo, commit, MANIFESTS_DIRECTORY)), root=root)


def read_git_blob(blob: Any) -> bytes | ManifestProblem:
    """A gitpython blob's bytes, unless it is a link or over MAX_MANIFEST_BYTES (then never read)."""
    if blob.mode == _GIT_LINK_MODE:
        return _not_read(blob.path, blob.path, _LINK)
    if blob.size > MAX_MANIFEST_BYTES:
        return _not_read(blob.path, blob.path, TooLarge(blob.path, blob.size, MAX_MANIFEST_BYTES).reason)
    data: bytes = blob.data_stream.read()
    return data


def read_git_manifest(blob: Any, relative: str | None = None) -> ProcessedManifest | ManifestProblem:
    """One manifest from a gitpython blob, read as every manifest is (read_git_blob); `relative`: the
    path to read it as, when not its own."""
    content = read_git_blob(blob)
    return content if isinstance(content, ManifestProblem) else parse_manifest(relative or blob.path, content)


class ManifestIndex:
    """Every processed org/kind/name/version, read once per run."""

    def __init__(self, manifests: list[ProcessedManifest], problems: list[ManifestProblem] | None = None) -> None:
        self.manifests = manifests
        self.problems = problems or []
        self._by_key: dict[VersionKey, list[ProcessedManifest]] = defaultdict(list)
        for manifest in manifests:
            if manifest.key is not None:
                self._by_key[manifest.key].append(manifest)

    @classmethod
    def load(cls, manifests_dir: Path) -> ManifestIndex:
        scan = load_manifests(manifests_dir)
        return cls(scan.manifests, scan.problems)

    def for_key(self, key: VersionKey) -> list[ProcessedManifest]:
        return self._by_key.get(key, [])


@dataclass(frozen=True)
class ExchangeRecord:
    """What a consumer needs to trust and trace an artifact: the ``"exchange"`` block of a manifest."""

    git_commit: str
    rootfs_hash: str
    rootfs_url: str
    rootfs_size: int
    image: str
    image_digest_reference: str | None
    image_config_digest: str
    platform: str
    # Only present when used, so manifests without a mirror or skipped checks keep their shape.
    mirrored_image: str | None = None  # <mirror>/<org>-<name>@sha256:<digest>
    skipped_checks: tuple[str, ...] | None = None  # conformance rule ids skipped with --skip-check
    sbom_url: str | None = None  # the rootfs's SBOM (CycloneDX JSON), beside it: <object>.sbom.json
    sbom_sha256: str | None = None  # its sha256 hex
    sbom_packages: int | None = None  # how many packages it lists, and the OS: for the catalog, no download
    sbom_os: str | None = None
    # The squashfs image beside the tarball (docs/squashfs.md), when the policy asks for it.
    squashfs_url: str | None = None
    squashfs_sha384: str | None = None  # "sha384:<hex>"
    squashfs_size: int | None = None
    # Fields a publish hook adds (process/publish.py's PublishHook.manifest_fields), after the others.
    extra: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        # The first three keys are those existing exchanges' manifests already carry.
        optional = {"mirrored-image": self.mirrored_image,
                    "skipped-checks": list(self.skipped_checks) if self.skipped_checks is not None else None,
                    "sbom-url": self.sbom_url, "sbom-sha256": self.sbom_sha256, "sbom-packages": self.sbom_packages,
                    "sbom-os": self.sbom_os, "squashfs-url": self.squashfs_url,
                    "squashfs-sha384": self.squashfs_sha384, "squashfs-size": self.squashfs_size}
        return {
            "git-commit": self.git_commit,
            "rootfs-hash": self.rootfs_hash,
            "rootfs-url": self.rootfs_url,
            "rootfs-size": self.rootfs_size,
            "image": self.image,
            "image-digest-reference": self.image_digest_reference,
            "image-config-digest": self.image_config_digest,
            "platform": self.platform,
        } | {key: value for key, value in optional.items() if value is not None} | dict(self.extra or {})


def build_manifest(kind: SpecKind, spec: dict[str, Any], record: ExchangeRecord,
                   invocation_schema: dict[str, Any]) -> dict[str, Any]:
    return {kind.value: spec, "exchange": record.as_json(), "invocation-schema": invocation_schema}


def manifest_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
