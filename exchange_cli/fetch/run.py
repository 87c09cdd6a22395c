"""`exchange fetch`: one processed version's rootfs, from its URL or straight from the bucket; the version is
one of the exchange's, or the manifest a file or URL holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..bounded import Bounded, Limit, rootfs_limit
from ..catalog.model import CatalogEntry, CatalogVersion
from ..errors import ExchangeError, redact, writing
from ..names import MAX_COMPONENT_LENGTH, NAME_RULE, as_name, name_problem
from ..remote import open_named_url
from ..storage.bucket import Bucket
from .download import save_verified
from .extract import ExtractionSummary, extract_safely
from .manifest_source import ManifestSource

TARBALL_SUFFIXES = (".tgz", ".tar.gz", ".tar")
SQUASHFS_SUFFIXES = (".sqfs",)


class DeliveredAsImage(ExchangeError):
    """The version is an image in a registry (``rootfs-url: docker://…``): there is no tarball to fetch."""

    def __init__(self, shown: str, rootfs_url: str) -> None:
        self.pull_reference = image_pull_reference(rootfs_url)
        super().__init__(f"{shown} is delivered as an image, not a rootfs tarball; "
                         f"pull it with: docker pull {self.pull_reference}")


def image_pull_reference(rootfs_url: str) -> str:
    """``docker://registry/repo@sha256:…`` -> ``registry/repo@sha256:…``."""
    return rootfs_url.removeprefix("docker://")


@dataclass(frozen=True)
class FetchTarget:
    """One processed version to fetch: its manifest, how messages name it, and where the manifest came from."""

    version: CatalogVersion
    shown: str  # acme/hello@1.0.0, or the manifest's path or URL
    manifest_shown: str  # how messages name the manifest
    unpack_name: str  # <org>-<name>-<version>: the spec's text, made a NAME before it names a folder
    # The URL a manifest given by URL was read from: what it names is opened only as remote.refusal allows.
    fetched_from: str | None = None
    in_exchange: bool = True  # one of the exchange's manifests; else a file or URL given on the command line

    @classmethod
    def of_version(cls, entry: CatalogEntry, version: CatalogVersion) -> FetchTarget:
        """A processed version of the exchange's catalog (reference.find_processed_version)."""
        assert version.manifest is not None
        return cls(version, f"{entry.ref}@{version.version}", str(version.manifest.path),
                   f"{entry.org}-{entry.name}-{version.version}")

    @classmethod
    def of_manifest(cls, source: ManifestSource) -> FetchTarget:
        manifest = source.manifest
        parts = (manifest.org, manifest.name, manifest.version)
        return cls(CatalogVersion(manifest.version or "", manifest.spec, manifest), source.shown, source.shown,
                   "-".join(part for part in parts if part) or "rootfs", source.fetched_from, in_exchange=False)


@dataclass(frozen=True)
class FetchOutcome:
    source: str
    path: Path
    rootfs_hash: str
    size: int
    extracted_to: Path | None = None
    extraction: ExtractionSummary | None = None


@dataclass(frozen=True)
class _Artifact:
    """One published file of a version, as its manifest names it: the tarball, or the squashfs image."""

    label: str  # how messages name it
    hash: str | None  # "sha384:<hex>"
    size: object  # the recorded size, whatever its type (rootfs_limit checks it)
    url: str | None
    object_name: str | None
    suffixes: tuple[str, ...]


def _artifact(target: FetchTarget, kind: str) -> _Artifact:
    version, manifest = target.version, target.version.manifest
    assert manifest is not None
    if kind == "tarball":
        return _Artifact("rootfs", version.rootfs_hash, version.rootfs_size, version.rootfs_url,
                         manifest.bucket_object or f"{manifest.path.stem}.tgz", TARBALL_SUFFIXES)
    block = manifest.exchange
    if not block.get("squashfs-url"):
        raise ExchangeError(f"{target.manifest_shown}: the manifest names no squashfs image (squashfs-url): "
                            "the exchange publishes one only when its policy asks for it (docs/squashfs.md)")
    digest, url = block.get("squashfs-sha384"), block.get("squashfs-url")
    return _Artifact("squashfs image", digest if isinstance(digest, str) else None, block.get("squashfs-size"),
                     url if isinstance(url, str) else None, manifest.squashfs_object, SQUASHFS_SUFFIXES)


def fetch_rootfs(target: FetchTarget, out_dir: Path, *, extract: bool, bucket: Bucket | None = None,
                 file: Path | None = None, artifact: str = "tarball") -> FetchOutcome:
    """The tarball (or with `artifact` "squashfs" the squashfs image) goes to `file`, else into `out_dir`
    under its object name; `extract` unpacks the tarball into `out_dir`/<org>-<name>-<version>/."""
    version = target.version
    manifest = version.manifest
    assert manifest is not None  # processed versions only (reference.find_processed_version, or a manifest)
    if version.rootfs_hash is None:
        raise ExchangeError(f"{target.manifest_shown}: the manifest has no rootfs-hash; nothing to verify a "
                            "download against")
    if manifest.is_image:
        raise DeliveredAsImage(target.shown, version.rootfs_url or "")
    wanted = _artifact(target, artifact)
    if wanted.hash is None:
        raise ExchangeError(f"{target.manifest_shown}: the manifest records no hash of the {wanted.label}; "
                            "nothing to verify a download against")
    name = _object_name(target, wanted.object_name or "", wanted.suffixes, names_file=file is None)
    destination = file if file is not None else out_dir / name
    limit = rootfs_limit(wanted.size)
    if bucket is not None:
        source = f"{bucket.uri}/{name}"
        stream_context = bounded_stream(bucket.open_read(name), limit, source)
    elif wanted.url:
        source = redact(wanted.url)
        stream_context = open_named_url(wanted.url, target.fetched_from, limit)
    else:
        raise ExchangeError(f"{target.manifest_shown}: the manifest has no rootfs-url; use --bucket to fetch from "
                            "the bucket")
    size = wanted.size if isinstance(wanted.size, int) and not isinstance(wanted.size, bool) else None
    with stream_context as stream:
        save_verified(stream, destination, expected_hash=wanted.hash, expected_size=size, source=source)
    outcome = FetchOutcome(source, destination, wanted.hash, destination.stat().st_size)
    if not extract:
        return outcome
    unpacked = out_dir / as_name(target.unpack_name)  # the spec's text, made a NAME
    with writing(unpacked, "the extracted rootfs"):
        summary = extract_safely(destination, unpacked)
    return FetchOutcome(outcome.source, outcome.path, outcome.rootfs_hash, outcome.size, unpacked, summary)


@contextlib.contextmanager
def bounded_stream(opened: contextlib.AbstractContextManager[BinaryIO], limit: Limit, source: str) -> Iterator[Bounded]:
    with opened as stream:
        yield Bounded(stream, limit, source)


def _object_name(target: FetchTarget, name: str, suffixes: tuple[str, ...], *, names_file: bool) -> str:
    """The object's name, which also names the file written without -o (`names_file`). A manifest from
    outside the exchange (anyone's file or URL) must not choose which file of the current directory is
    replaced: the name must then be a NAME (no dot file, no path) ending like a tarball (`suffixes`)."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ExchangeError(f"{target.manifest_shown}: its rootfs-url ends in {name!r}, which is not a file name")
    fitting = name_problem(name, MAX_COMPONENT_LENGTH) is None and name.endswith(suffixes)
    if names_file and not target.in_exchange and not fitting:
        key, kind = ("rootfs-url", "tarball") if suffixes == TARBALL_SUFFIXES else ("squashfs-url", "squashfs image")
        raise ExchangeError(f"{target.manifest_shown}: its {key} ends in {name!r}, which is not a {kind}'s "
                            f"name ({NAME_RULE}, ending in {' or '.join(suffixes)}); give -o FILE")
    return name
