"""`exchange fetch`: one processed version's rootfs, from its URL or straight from the bucket."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ContextManager

from ..bounded import Bounded, Limit, rootfs_limit
from ..catalog.model import CatalogEntry, CatalogVersion
from ..errors import ExchangeError, redact, writing
from ..names import as_name
from ..storage.bucket import Bucket
from .download import save_verified
from .extract import ExtractionSummary, extract_safely
from .sources import open_url


class DeliveredAsImage(ExchangeError):
    """The version is an image in a registry (``rootfs-url: docker://…``): there is no tarball to fetch."""

    def __init__(self, entry: CatalogEntry, version: CatalogVersion) -> None:
        self.pull_reference = image_pull_reference(version.rootfs_url or "")
        super().__init__(f"{entry.ref}@{version.version} is delivered as an image, not a rootfs tarball; "
                         f"pull it with: docker pull {self.pull_reference}")


def image_pull_reference(rootfs_url: str) -> str:
    """``docker://registry/repo@sha256:…`` -> ``registry/repo@sha256:…``."""
    return rootfs_url.removeprefix("docker://")


@dataclass(frozen=True)
class FetchOutcome:
    source: str
    path: Path
    rootfs_hash: str
    size: int
    extracted_to: Path | None = None
    extraction: ExtractionSummary | None = None


def fetch_rootfs(entry: CatalogEntry, version: CatalogVersion, out_dir: Path, *, extract: bool,
                 bucket: Bucket | None = None, file: Path | None = None) -> FetchOutcome:
    """The tarball goes to `file`, else into `out_dir` under its object name; `extract` unpacks it into
    `out_dir`/<org>-<name>-<version>/."""
    manifest = version.manifest
    assert manifest is not None  # callers pass processed versions (reference.find_processed_version)
    if version.rootfs_hash is None:
        raise ExchangeError(f"{manifest.path}: the manifest has no rootfs-hash; nothing to verify a download against")
    if manifest.is_image:
        raise DeliveredAsImage(entry, version)
    name = _local_file_name(manifest.bucket_object or f"{manifest.path.stem}.tgz", manifest.path)
    destination = file if file is not None else out_dir / name
    limit = rootfs_limit(version.rootfs_size)
    if bucket is not None:
        source = f"{bucket.uri}/{name}"
        stream_context = _bounded(bucket.open_read(name), limit, source)
    elif version.rootfs_url:
        source = redact(version.rootfs_url)
        stream_context = open_url(version.rootfs_url, limit)
    else:
        raise ExchangeError(f"{manifest.path}: the manifest has no rootfs-url; use --bucket to fetch from the bucket")
    with stream_context as stream:
        save_verified(stream, destination, expected_hash=version.rootfs_hash, expected_size=version.rootfs_size,
                      source=source)
    outcome = FetchOutcome(source, destination, version.rootfs_hash, destination.stat().st_size)
    if not extract:
        return outcome
    target = out_dir / as_name(f"{entry.org}-{entry.name}-{version.version}")  # the spec's text, made a NAME
    with writing(target, "the extracted rootfs"):
        summary = extract_safely(destination, target)
    return FetchOutcome(outcome.source, outcome.path, outcome.rootfs_hash, outcome.size, target, summary)


@contextlib.contextmanager
def _bounded(opened: ContextManager[BinaryIO], limit: Limit, source: str) -> Iterator[Bounded]:
    with opened as stream:
        yield Bounded(stream, limit, source)


def _local_file_name(name: str, manifest_path: Path) -> str:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ExchangeError(f"{manifest_path}: its rootfs-url ends in {name!r}, which is not a file name")
    return name
