"""The SBOM of a published rootfs tarball, for manifests published before SBOMs (`exchange backfill-sbom`).

The tarball is the flattener's output, read once as a stream (gzip, then tar, never unpacked): its
entries come in the same canonical order the flattener wrote them in, so the same `Collector` sees
the same files and `render` gives the same bytes that `exchange export --sbom` gives for it.
"""

from __future__ import annotations

import hashlib
import tarfile
from typing import BinaryIO, cast

from ..bounded import Bounded, Readable, rootfs_limit
from ..errors import ExchangeError
from ..storage.bucket import Bucket
from .collect import Collector
from .errors import Unreadable
from .model import Findings


class HashingReader:
    """Reads `stream` on, hashing (sha384) every byte that passes, so the caller can check what it parsed."""

    def __init__(self, stream: Readable) -> None:
        self.stream, self.hasher, self.size = stream, hashlib.sha384(), 0

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size)
        self.hasher.update(block)
        self.size += len(block)
        return block

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def collect_from_tarball(stream: Readable) -> Findings:
    """The findings of a gzip rootfs tarball read from `stream` to its end (Unreadable if it is not one)."""
    collector = Collector()
    try:
        # tarfile's streaming mode only calls read(): any reader will do.
        with tarfile.open(fileobj=cast(BinaryIO, stream), mode="r|gz") as archive:
            for member in archive:
                if not member.isreg():
                    continue
                directory, _, name = member.name.rpartition("/")
                limit = collector.wants(f"{directory}/" if directory else "", name)
                if not limit:
                    continue
                extracted = archive.extractfile(member) if member.size <= limit else None
                collector.take(member.name, extracted.read() if extracted is not None else None, member.size)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise Unreadable(f"not a gzip tar stream ({error})") from None
    return collector.finish()


def document_of_stored_rootfs(bucket: Bucket, name: str, sha384: str, size: object) -> bytes:
    """The SBOM document of the rootfs object `name`, read once and refused (ExchangeError) unless it is
    exactly `sha384` (hex), the hash its manifest pins; `size`: its manifest's rootfs-size, if any."""
    from . import render  # the document library, loaded only here

    with bucket.open_read(name) as raw:
        reader = HashingReader(Bounded(raw, rootfs_limit(size), f"{bucket.uri}/{name}"))
        try:
            findings = collect_from_tarball(reader)
        except Unreadable as error:
            raise ExchangeError(f"{bucket.uri}/{name}: {error}") from None
        reader.drain()
    if reader.hasher.hexdigest() != sha384:
        raise ExchangeError(f"{bucket.uri}/{name} hashes to sha384:{reader.hasher.hexdigest()}, not the "
                            f"sha384:{sha384} its manifest pins: no SBOM made from it")
    return render(findings, sha384)
