"""The bounded on-disk cache of layer blobs, stored as verified, uncompressed tar files.

Every source streams a layer's blob through `BlobCache.store_layer` exactly once: the raw bytes are
checked against the blob's digest and size, decompressed (gzip, zstd or none, by their magic bytes)
up to `max_layer_size` bytes, and the tar is checked against the config's diff_id while it is
written. The flattener then reads the tars with random access, so the final rootfs can be written in
a canonical order.

What the cache trusts: a file is a hit only if the cache wrote it. ``<alg>-<hex>.tar`` is renamed
into place after its content hashed to that digest, and only then is ``<alg>-<hex>.verified``
written beside it, recording the digest and the size; both names come from a `Digest`, never from
image text, so no image can name or forge either. A tar without its record, with a record for
another digest or size, or that is not a regular file, is a miss and is written afresh. Both are
renamed over their names whole, so jobs storing the same layer at once all succeed, and a layer
that is a hit stays one while they do.

Temporary files (a tar's or a record's): each ``.layer-*.tmp`` is locked (flock) by the process
writing it for as long as it exists. One that nobody holds a lock on belongs to a run that died
(kill -9, a lost machine); the first write of every later run removes those, and never a live
writer's.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import queue
import stat
import threading
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from isal import igzip, isal_zlib

from ..bounded import read_at_most
from ..errors import ExchangeError, OutputError, writing
from ..jsonpos import strict_data
from ..lockedtemp import locked_temp_file, remove_abandoned
from ..logs import logger
from ..progress import NullProgress, Task, format_bytes
from .digest import Digest
from .model import DEFAULT_MAX_LAYER_SIZE, LayerBlob

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

LOG = logger("cache")
CHUNK = 1 << 20
# What follows a compressed layer's end is a few bytes if anything: a small buffer reads it, where a
# megabyte, zeroed and its pages faulted in for each layer, cost 0.3 ms.
DRAIN_CHUNK = 64 << 10
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_MAX_BYTES = 20 * 1024**3
TEMP_PREFIX, TEMP_SUFFIX = ".layer-", ".tmp"
RECORD_SUFFIX = ".verified"
MAX_RECORD_BYTES = 4096
# isal's stub declares `error: Exception`, an instance; at run time it is the exception class IsalError.
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)


class ReadableInto(Protocol):
    """What a layer is read from: a binary stream that reads into the caller's buffer (a file, a
    response body, a tar member, a decompressor); None or 0 at the end."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


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


class VerifyingReader(io.RawIOBase):
    """Reads through to `raw`, checking size and digest; the check fires at end of stream.

    Bytes are read straight into the caller's buffer and hashed there: a decompressor reading
    through this fills its own input buffer, with no copy in between."""

    def __init__(self, raw: ReadableInto, *, image: str, digest: Digest | str, size: int | None,
                 task: Task | None = None) -> None:
        self.raw, self.image, self.digest, self.size = raw, image, Digest.parse(digest), size
        self.hasher = self.digest.hasher()
        self.count = 0
        self.task = task
        self.verified = False
        self._head = memoryview(b"")  # read by `peek`, served again first

    def readable(self) -> bool:
        return True

    def peek(self, size: int) -> bytes:
        """The first `size` bytes (fewer only if the stream is shorter), which reads then return again."""
        head, self._head = bytes(self._head), memoryview(b"")
        while len(head) < size and (chunk := self._read(size - len(head))):
            head += chunk
        self._head = memoryview(head)
        return head[:size]

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._head:
            with memoryview(buffer) as view:
                count = min(len(view), len(self._head))
                view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        with memoryview(buffer) as view:
            count = self.raw.readinto(view) or 0
            if not count:
                self._verify()
                return 0
            self.count += count
            self.hasher.update(view[:count])
        if self.task is not None:
            self.task.advance(count)
        if self.size is not None and self.count > self.size:
            raise BlobError(self.image, self.digest, f"longer than the {self.size} bytes the manifest declares")
        return count

    def _read(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[:self.readinto(buffer)])

    def drain(self) -> None:
        buffer = bytearray(DRAIN_CHUNK)
        while self.readinto(buffer):
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
    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE  # uncompressed bytes of one layer
    _swept: bool = field(default=False, init=False, repr=False, compare=False)
    _sweep_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def default(cls) -> BlobCache:
        return cls(default_cache_dir())

    @property
    def layers_dir(self) -> Path:
        return self.root / "layers"

    def layer_path(self, diff_id: Digest | str) -> Path:
        """Where the tar of `diff_id` lives; only a valid digest names a file here (InvalidDigest otherwise)."""
        digest = Digest.parse(diff_id)
        return self.layers_dir / f"{digest.algorithm}-{digest.hex}.tar"

    def record_path(self, diff_id: Digest | str) -> Path:
        return self.layer_path(diff_id).with_suffix(RECORD_SUFFIX)

    def lookup(self, *, digest: Digest, diff_id: Digest, media_type: str, size: int) -> LayerBlob | None:
        """The cached layer, if this cache wrote and verified it earlier; None otherwise."""
        path = self.layer_path(diff_id)
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(found.st_mode) or self._record(diff_id) != _record_of(diff_id, found.st_size):
            return None
        with contextlib.suppress(OSError):  # a read-only cache is still a cache
            os.utime(path)  # marks it recently used for eviction
        LOG.debug("layer cache hit: %s (%s)", diff_id, format_bytes(found.st_size))
        return LayerBlob(digest=digest, diff_id=Digest.parse(diff_id), media_type=media_type, size=size,
                         tar_path=path)

    def store_layer(self, stream: ReadableInto, *, image: str, digest: Digest, size: int | None, media_type: str,
                    diff_id: Digest | None, task: Task | None = None) -> LayerBlob:
        """Verify and decompress `stream` into the cache; `diff_id` None means: compute it, trust nothing."""
        raw = VerifyingReader(stream, image=image, digest=digest, size=size, task=task)

        def fill(writer: _HashingWriter) -> None:
            self._decompress_into(raw, writer, image=image, digest=raw.digest)
            raw.drain()

        def check(tar_digest: Digest) -> None:
            if diff_id is not None and tar_digest != diff_id:
                raise BlobError(image, digest, f"uncompressed content hashes to {tar_digest}, "
                                               f"but the image config lists diff_id {diff_id}")

        tar_digest, path = self._write(fill, check)
        return LayerBlob(digest=raw.digest, diff_id=tar_digest, media_type=media_type, size=raw.count, tar_path=path)

    def store_tar(self, stream: ReadableInto, *, image: str, name: str, media_type: str,
                  task: Task | None = None) -> LayerBlob:
        """An uncompressed layer tar whose digest nobody told us (a legacy docker-save ``layer.tar``):
        its sha256 is both its digest and its diff_id, checked against the config by the caller."""
        def fill(writer: _HashingWriter) -> None:
            self._copy_limited(stream, writer, image=image, label=name, task=task)

        tar_digest, path = self._write(fill, lambda digest: None)
        return LayerBlob(digest=tar_digest, diff_id=tar_digest, media_type=media_type,
                         size=path.stat().st_size, tar_path=path)

    def remove_abandoned(self) -> list[Path]:
        """Delete the temporary files of writers that are gone; a live writer holds its file's lock."""
        return remove_abandoned(self.layers_dir, f"{TEMP_PREFIX}*{TEMP_SUFFIX}")

    def _write(self, fill: Callable[[_HashingWriter], None], check: Callable[[Digest], None]) -> tuple[Digest, Path]:
        """Fill a locked temporary file, check its digest, rename it into place, then record it verified."""
        self._sweep_once()
        fd, temp = self._locked_temp()
        out = os.fdopen(fd, "wb")
        try:
            writer = _HashingWriter(out, temp)
            try:
                fill(writer)
            except BaseException:
                writer.abandon()
                raise
            tar_digest = Digest.parse(f"sha256:{writer.finish()}")
            check(tar_digest)
            path = self.layer_path(tar_digest)
            with writing(temp):
                out.flush()
                size = os.fstat(out.fileno()).st_size
                os.replace(temp, path)  # still locked: a sweeper never sees it unlocked under its temp name
            with writing(self.record_path(tar_digest)):
                self._write_record(tar_digest, size)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        finally:
            with contextlib.suppress(OSError):
                out.close()
        return tar_digest, path

    def _locked_temp(self) -> tuple[int, Path]:
        with writing(self.layers_dir):
            self.layers_dir.mkdir(parents=True, exist_ok=True)
            return locked_temp_file(self.layers_dir, TEMP_PREFIX, TEMP_SUFFIX)

    def _sweep_once(self) -> None:
        with self._sweep_lock:
            if not self._swept and self.layers_dir.is_dir():
                self.remove_abandoned()
            self._swept = True

    def _record(self, diff_id: Digest) -> Any:
        try:
            with open(self.record_path(diff_id), "rb", opener=_no_follow) as handle:
                record = read_at_most(handle, MAX_RECORD_BYTES)
            return None if record is None else strict_data(record)  # larger: not a record we wrote
        except (OSError, ValueError):
            return None

    def _write_record(self, diff_id: Digest, size: int) -> None:
        """Written whole to a locked temporary file, then renamed over whatever is there: jobs storing the
        same layer at once each replace the record atomically (a reader sees one complete record or the
        other, both alike), and a link left at its name is replaced, never written through."""
        fd, temp = self._locked_temp()
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                json.dump(_record_of(diff_id, size), handle)
                handle.flush()
                os.replace(temp, self.record_path(diff_id))  # still locked: never swept as abandoned
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def _decompress_into(self, raw: VerifyingReader, writer: _HashingWriter, *, image: str, digest: Digest) -> None:
        magic = raw.peek(4)
        errors: tuple[type[Exception], ...] = (EOFError, gzip.BadGzipFile, _ISAL_ERROR)
        if magic.startswith(GZIP_MAGIC):
            # igzip's C reader fills its input buffer through `raw` and inflates straight into the
            # writer's buffers (`readinto`), with the GIL released. Not through IGzipFile: its
            # `readinto` is `read` (a fresh bytes per call) and a copy.
            # Both decompressors only read from `raw`; their stubs ask for a whole BinaryIO.
            reader: ReadableInto = igzip._IGzipReader(cast(BinaryIO, raw), igzip.READ_BUFFER_SIZE)
        elif magic.startswith(ZSTD_MAGIC):
            import zstandard  # only a zstd layer needs it; most are gzip

            reader = zstandard.ZstdDecompressor().stream_reader(cast(BinaryIO, raw), read_across_frames=True)
            errors = (*errors, zstandard.ZstdError)
        else:
            reader = raw
        try:
            self._copy_limited(reader, writer, image=image, label=digest)
        except errors as exc:
            # Narrow on purpose: a dropped connection is an OSError too, and must reach the retry logic.
            raise BlobError(image, digest, f"cannot decompress: {exc}") from exc

    def _copy_limited(self, reader: ReadableInto, writer: _HashingWriter, *, image: str, label: str,
                      task: Task | None = None) -> None:
        """Copy until the end, or fail as soon as the layer passes `max_layer_size`."""
        total = 0
        while True:
            buffer = writer.buffer()
            count = _fill(reader, buffer)
            if not count:
                writer.give_back(buffer)
                return
            total += count
            if total > self.max_layer_size:
                writer.give_back(buffer)
                raise BlobError(image, label, f"the layer decompresses to more than {self.max_layer_size} bytes "
                                              "(the --max-layer-size limit); stopped there")
            writer.put(buffer, count)
            if task is not None:
                task.advance(count)
            if count < len(buffer):  # _fill stops short only where the stream ends: no buffer to find that out
                return

    def evict(self, keep: AbstractSet[str] = frozenset()) -> None:
        """Trim least recently used layers until the cache fits `max_bytes`; never those in `keep`."""
        if not self.layers_dir.is_dir():
            return
        self._sweep_once()
        kept = {self.layer_path(d) for d in keep}
        entries = sorted((p.stat().st_mtime, p) for p in self.layers_dir.glob("*.tar"))
        total = sum(p.stat().st_size for _, p in entries)
        for _, path in entries:
            if total <= self.max_bytes:
                break
            if path in kept:
                continue
            total -= path.stat().st_size
            path.with_suffix(RECORD_SUFFIX).unlink(missing_ok=True)  # first: a record never outlives its tar
            path.unlink(missing_ok=True)


def _record_of(diff_id: Digest, size: int) -> dict[str, str | int]:
    return {"diff_id": str(diff_id), "size": size}


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _fill(reader: ReadableInto, buffer: bytearray) -> int:
    """Read until `buffer` is full or the stream ends: few, large writes whatever the reader returns."""
    filled = 0
    with memoryview(buffer) as view:
        while filled < len(buffer) and (count := reader.readinto(view[filled:])):
            filled += count
    return filled


class _HashingWriter:
    """Hashes and writes filled buffers on a second thread, so the disk and the decompressor work at
    the same time (hashlib, isal and file writes all release the GIL). The buffers go round a pool of at
    most `depth`: the reading thread fills one the writer has finished with, and makes a new one only
    while all it has are queued. A layer smaller than a buffer (an image's ENV, or a COPY of a few files,
    is kilobytes) thus costs one buffer, not `depth`: the six made for every layer, each zeroed and its
    pages faulted in, were 1.2 of the 3.8 ms of CPU that storing a 10 KiB layer took."""

    def __init__(self, out: BinaryIO, path: Path, depth: int = 6) -> None:
        self.out, self.path = out, path
        self.hasher = hashlib.sha256()
        self.free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self.unmade = depth  # buffers the pool may still make; only the reading thread makes them
        self.filled: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="layer-writer", daemon=True)
        self.thread.start()

    def buffer(self) -> bytearray:
        """An empty buffer to fill; waits while all are queued for writing."""
        if self.failure is not None:
            raise self.failure
        try:
            return self.free.get_nowait()
        except queue.Empty:
            if not self.unmade:
                return self.free.get()
        self.unmade -= 1
        return bytearray(CHUNK)

    def give_back(self, buffer: bytearray) -> None:
        self.free.put(buffer)

    def put(self, buffer: bytearray, count: int) -> None:
        """Hash and write the first `count` bytes of `buffer`, which then returns to the pool."""
        self.filled.put((buffer, count))

    def finish(self) -> str:
        self.filled.put(None)
        self.thread.join()
        if self.failure is not None:
            raise self.failure
        return self.hasher.hexdigest()

    def abandon(self) -> None:
        self.failure = self.failure or _Abandoned()
        self.filled.put(None)
        self.thread.join()

    def _run(self) -> None:
        while (item := self.filled.get()) is not None:
            buffer, count = item
            if self.failure is None:
                try:
                    with memoryview(buffer) as view:
                        self.hasher.update(view[:count])
                        self.out.write(view[:count])
                except OSError as error:  # disk full, quota, I/O error: raised again in the reading thread
                    self.failure = OutputError.writing(self.path, error)
                except BaseException as error:  # noqa: BLE001 - raised again in the reading thread
                    self.failure = error
            self.free.put(buffer)


class _Abandoned(Exception):
    pass


_ = NullProgress  # re-exported for sources that want a no-op task
