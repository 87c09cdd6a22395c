"""The bounded on-disk cache of layer blobs, stored as verified, uncompressed tar files.

Every source streams a layer's blob through `BlobCache.store_layer` exactly once: the raw bytes are
checked against the blob's digest and size, decompressed (gzip, zstd or none, by their magic bytes),
and the tar is checked against the config's diff_id while it is written. The flattener then reads
the tars with random access, so the final rootfs can be written in a canonical order.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import queue
import threading
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard
from isal import igzip, isal_zlib

from ..errors import ExchangeError
from ..progress import NullProgress, Task
from .model import LayerBlob

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_MAX_BYTES = 20 * 1024**3


class BlobError(ExchangeError):
    """A blob failed verification or could not be read; names the image and the blob."""

    def __init__(self, image: str, digest: str, reason: str) -> None:
        super().__init__(f"{image}: blob {digest}: {reason}")
        self.image, self.digest, self.reason = image, digest, reason


def default_cache_dir() -> Path:
    if os.environ.get("EXCHANGE_CACHE_DIR"):
        return Path(os.environ["EXCHANGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "exchange"


def new_hasher(digest: str) -> "hashlib._Hash":
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


class VerifyingReader(io.RawIOBase):
    """Reads through to `raw`, checking size and digest; the check fires at end of stream."""

    def __init__(self, raw: BinaryIO, *, image: str, digest: str, size: int | None, task: Task | None = None) -> None:
        self.raw, self.image, self.digest, self.size = raw, image, digest, size
        self.hasher = new_hasher(digest)
        self.count = 0
        self.task = task
        self.verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.raw.read(len(buffer))
        if not data:
            self._verify()
            return 0
        buffer[: len(data)] = data
        self.count += len(data)
        self.hasher.update(data)
        if self.task is not None:
            self.task.advance(len(data))
        if self.size is not None and self.count > self.size:
            raise BlobError(self.image, self.digest, f"longer than the {self.size} bytes the manifest declares")
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
        self._verify()

    def _verify(self) -> None:
        if self.verified:
            return
        if self.size is not None and self.count != self.size:
            raise BlobError(self.image, self.digest, f"truncated: got {self.count} of {self.size} bytes")
        actual = f"{self.hasher.name}:{self.hasher.hexdigest()}"
        if actual != self.digest:
            raise BlobError(self.image, self.digest, f"digest mismatch: content hashes to {actual}")
        self.verified = True


@dataclass
class BlobCache:
    root: Path
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def default(cls) -> "BlobCache":
        return cls(default_cache_dir())

    @property
    def layers_dir(self) -> Path:
        return self.root / "layers"

    def layer_path(self, diff_id: str) -> Path:
        return self.layers_dir / f"{diff_id.replace(':', '-')}.tar"

    def lookup(self, *, digest: str, diff_id: str, media_type: str, size: int) -> LayerBlob | None:
        """The cached layer, if an earlier export already verified it."""
        path = self.layer_path(diff_id)
        if not path.is_file():
            return None
        os.utime(path)  # marks it recently used for eviction
        return LayerBlob(digest=digest, diff_id=diff_id, media_type=media_type, size=size, tar_path=path)

    def store_layer(self, stream: BinaryIO, *, image: str, digest: str, size: int | None, media_type: str,
                    diff_id: str | None, task: Task | None = None) -> LayerBlob:
        """Verify and decompress `stream` into the cache; `diff_id` None means: compute it, trust nothing."""
        raw = VerifyingReader(stream, image=image, digest=digest, size=size, task=task)
        self.layers_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=".layer-", suffix=".tmp", dir=self.layers_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                tar_digest = self._decompress_into(raw, out, image=image, digest=digest)
            raw.drain()
            if diff_id is not None and tar_digest != diff_id:
                raise BlobError(image, digest, f"uncompressed content hashes to {tar_digest}, "
                                               f"but the image config lists diff_id {diff_id}")
            path = self.layer_path(tar_digest)
            os.replace(temp_name, path)
        except BaseException:
            with _suppress_missing():
                os.unlink(temp_name)
            raise
        return LayerBlob(digest=digest, diff_id=tar_digest, media_type=media_type, size=raw.count, tar_path=path)

    def _decompress_into(self, raw: VerifyingReader, out: BinaryIO, *, image: str, digest: str) -> str:
        buffered = io.BufferedReader(raw, CHUNK)
        magic = buffered.peek(4)[:4]
        if magic.startswith(GZIP_MAGIC):
            reader: BinaryIO = igzip.IGzipFile(fileobj=buffered, mode="rb")
        elif magic.startswith(ZSTD_MAGIC):
            reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        else:
            reader = buffered
        writer = _HashingWriter(out)
        try:
            while chunk := reader.read(CHUNK):
                writer.put(chunk)
        except BlobError:
            writer.abandon()
            raise
        except (EOFError, gzip.BadGzipFile, isal_zlib.error, zstandard.ZstdError) as exc:
            # Narrow on purpose: a dropped connection is an OSError too, and must reach the retry logic.
            writer.abandon()
            raise BlobError(image, digest, f"cannot decompress: {exc}") from exc
        except BaseException:
            writer.abandon()
            raise
        return f"sha256:{writer.finish()}"

    def evict(self, keep: set[str] = frozenset()) -> None:
        """Trim least recently used layers until the cache fits `max_bytes`; never those in `keep`."""
        if not self.layers_dir.is_dir():
            return
        entries = sorted((p.stat().st_mtime, p) for p in self.layers_dir.glob("*.tar"))
        total = sum(p.stat().st_size for _, p in entries)
        for _, path in entries:
            if total <= self.max_bytes:
                break
            if path in {self.layer_path(d) for d in keep}:
                continue
            total -= path.stat().st_size
            path.unlink(missing_ok=True)


class _HashingWriter:
    """Hashes and writes decompressed chunks on a second thread, so the disk and the decompressor
    work at the same time (hashlib, isal and file writes all release the GIL)."""

    def __init__(self, out: BinaryIO, depth: int = 8) -> None:
        self.out = out
        self.hasher = hashlib.sha256()
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="layer-writer", daemon=True)
        self.thread.start()

    def put(self, chunk: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.chunks.put(chunk)

    def finish(self) -> str:
        self.chunks.put(None)
        self.thread.join()
        if self.failure is not None:
            raise self.failure
        return self.hasher.hexdigest()

    def abandon(self) -> None:
        self.failure = self.failure or _Abandoned()
        while True:
            try:
                self.chunks.get_nowait()
            except queue.Empty:
                break
        self.chunks.put(None)
        self.thread.join()

    def _run(self) -> None:
        while (chunk := self.chunks.get()) is not None:
            if self.failure is not None:
                continue
            try:
                self.hasher.update(chunk)
                self.out.write(chunk)
            except BaseException as error:  # noqa: BLE001 - raised again in the reading thread
                self.failure = error


class _Abandoned(Exception):
    pass


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return exc_type is FileNotFoundError


_ = NullProgress  # re-exported for sources that want a no-op task
