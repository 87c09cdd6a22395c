"""The bucket the exchange publishes to: content-addressed objects that are created once, never overwritten.

Two implementations share the upload contract defined here: a local directory (`file:///abs/path`)
and Google Cloud Storage (`gs://bucket[/prefix]`).
"""

from __future__ import annotations

import builtins
import hashlib
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from exchange_cli.errors import Category, ExchangeError, UsageError, redact
from exchange_cli.progress import Task

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

HASH_BLOCK_SIZE = 1024 * 1024
# A control record (the lease, the ownership record) is a few hundred bytes of JSON. read_control reads one
# byte more than this at most: a longer object is no record, and its reader refuses it by its length.
MAX_CONTROL_BYTES = 64 * 1024
_SHA384_HEX = re.compile(r"[0-9a-f]{96}")
SUPPORTED_URIS = "gs://bucket[/prefix] or file:///absolute/path"


class StorageError(ExchangeError):
    """The bucket refused or failed an operation, or holds something it must not."""


class StorageUnavailable(StorageError):
    """The bucket cannot be reached or written (network, credentials, a full disk): the environment."""

    category = Category.ENVIRONMENT


class ObjectNotFound(StorageError):
    pass


class ObjectChanged(StorageError):
    """Someone else replaced the object since we looked at it; we leave it alone."""


class ObjectExists(StorageError):
    """A create-only write found the object already there."""


class BucketUriError(UsageError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    sha384: str | None  # None when the bucket holds no record of it (see Bucket.content_sha384)
    generation: str | None  # opaque; identifies this version of the object for conditional deletes
    url: str


class Differs(Enum):
    """How a bucket object differs from what a record (a manifest, a shard record, an upload) says it holds."""

    MISSING = "missing"
    SIZE = "size"  # `found`: the object's size
    RECORDED_SHA384 = "recorded-sha384"  # `found`: the sha384 the bucket records for it
    CONTENT_SHA384 = "content-sha384"  # `found`: the sha384 of its bytes, read


class Hashing(Enum):
    """When `Bucket.mismatch` reads the object's bytes to hash them."""

    NEVER = "never"  # the recorded sha384 only, when there is one (a shallow audit)
    UNRECORDED = "unrecorded"  # when the bucket records no sha384 for it
    ALWAYS = "always"  # after the recorded sha384 agrees too (a deep audit)


@dataclass(frozen=True)
class Mismatch:
    differs: Differs
    found: int | str | None = None  # what the bucket has
    expected: int | str | None = None  # what the record says

    def describe(self, subject: str, source: str) -> str:
        """One text for every caller: `subject` ("it", an object's name) and `source` ("the manifest")."""
        if self.differs is Differs.MISSING:
            return f"{subject} is not in the bucket"
        if self.differs is Differs.SIZE:
            return f"{subject} has {self.found} bytes, {source} says {self.expected}"
        recorded = "is recorded with" if self.differs is Differs.RECORDED_SHA384 else "hashes to"
        return f"{subject} {recorded} sha384 {self.found}, {source} says {self.expected}"


@dataclass(frozen=True)
class UploadOutcome:
    info: ObjectInfo
    created: bool


class _CreateRaced(Exception):
    """Internal: another writer created the object between our stat and our create-only upload."""


class Bucket(ABC):
    uri: str

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo | None: ...

    @abstractmethod
    def delete(self, name: str, *, generation: str | None = None) -> bool:
        """Delete `name`; False when it was not there. With `generation`, only that version
        (ObjectChanged otherwise), so a rollback never removes an object someone else replaced."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose name starts with `prefix`, in lexicographic name order."""

    @abstractmethod
    def open_read(self, name: str) -> BinaryIO:
        """A streaming reader of the object's content; ObjectNotFound when it is not there."""

    @abstractmethod
    def download_url(self, name: str) -> str: ...

    @abstractmethod
    def _create(self, name: str, source: Path, *, size: int, sha384: str, progress_task: Task | None) -> ObjectInfo:
        """Create `name` from `source` atomically and only if it does not exist (_CreateRaced if it
        does by then); raise StorageError when the bytes sent do not hash to `sha384`, leaving nothing."""

    # Small control objects (the lease, see storage/lease.py): names that start with ".exchange-", which
    # are never listed, never orphans, and never content-addressed. Each write is conditional.

    @abstractmethod
    def create_control(self, name: str, data: bytes) -> str:
        """Create `name` holding `data` only if it does not exist (ObjectExists otherwise); its generation."""

    @abstractmethod
    def read_control(self, name: str) -> tuple[bytes, str] | None:
        """(data, generation), or None when there is no such object; at most MAX_CONTROL_BYTES + 1 bytes of
        it are read."""

    @abstractmethod
    def replace_control(self, name: str, data: bytes, generation: str) -> str:
        """Replace `name` only if it is still at `generation` (ObjectChanged otherwise); the new generation."""

    @abstractmethod
    def delete_control(self, name: str, generation: str) -> bool:
        """Delete `name` only if it is still at `generation` (ObjectChanged otherwise); False if absent."""

    def require_exists(self) -> None:  # noqa: B027 - deliberately a no-op by default: GCS needs no check
        """StorageUnavailable when there is no bucket at all (a command that reads one says so once, rather
        than calling every object missing). GCS reports a missing bucket on the first request."""

    def remove_abandoned_uploads(self) -> builtins.list[str]:  # `list` here is the method above
        """Remove what uploads whose process is certainly gone left behind; what was removed."""
        return []

    def upload_bytes(self, name: str, content: bytes) -> UploadOutcome:
        """`upload` for a small object held in memory (a signed envelope)."""
        with tempfile.TemporaryDirectory(prefix="exchange-upload-bytes-") as directory:
            path = Path(directory) / "content"
            path.write_bytes(content)
            return self.upload(name, path, size=len(content), sha384=hashlib.sha384(content).hexdigest())

    def upload(self, name: str, source: Path, *, size: int, sha384: str,
               progress_task: Task | None = None) -> UploadOutcome:
        """Upload unless an identical object is there (created=False). Never overwrites other content."""
        sha384 = sha384.lower()
        if not _SHA384_HEX.fullmatch(sha384):
            raise StorageError(f"cannot upload {name}: {sha384!r} is not a sha384 hex digest")
        actual_size = source.stat().st_size
        if actual_size != size:
            raise StorageError(f"cannot upload {source}: it has {actual_size} bytes, expected {size}")
        existing = self.stat(name)
        if existing is not None:
            return UploadOutcome(self._require_identical(existing, size, sha384), created=False)
        try:
            info = self._create(name, source, size=size, sha384=sha384, progress_task=progress_task)
        except _CreateRaced:
            existing = self.stat(name)
            if existing is None:
                raise StorageError(
                    f"{self.uri}: {name} was created and removed by another writer during our upload") from None
            return UploadOutcome(self._require_identical(existing, size, sha384), created=False)
        return UploadOutcome(info, created=True)

    def content_sha384(self, name: str) -> str:
        """Hash the stored bytes: for objects without a recorded sha384, and for deep audits."""
        digest = hashlib.sha384()
        with self.open_read(name) as reader:
            while block := reader.read(HASH_BLOCK_SIZE):
                digest.update(block)
        return digest.hexdigest()

    def mismatch(self, name: str, *, size: int | None, sha384: str | None, hashing: Hashing = Hashing.UNRECORDED,
                 info: ObjectInfo | None = None) -> Mismatch | None:
        """The one check that an object is present with this size and sha384: None when it is (a None `size` or
        `sha384` is not checked: an old manifest records neither), else how it differs, first difference first.
        `info`: the object as already listed or stat'ed."""
        info = info if info is not None else self.stat(name)
        if info is None:
            return Mismatch(Differs.MISSING)
        if size is not None and info.size != size:
            return Mismatch(Differs.SIZE, info.size, size)
        if sha384 is None:
            return None
        if info.sha384 is not None and info.sha384 != sha384:
            return Mismatch(Differs.RECORDED_SHA384, info.sha384, sha384)
        if hashing is Hashing.ALWAYS or (hashing is Hashing.UNRECORDED and info.sha384 is None):
            actual = self.content_sha384(name)
            if actual != sha384:
                return Mismatch(Differs.CONTENT_SHA384, actual, sha384)
        return None

    def _require_identical(self, existing: ObjectInfo, size: int, sha384: str) -> ObjectInfo:
        found = self.mismatch(existing.name, size=size, sha384=sha384, info=existing)
        if found is None:
            return existing if existing.sha384 is not None else self._remember_sha384(existing, sha384)
        stored_sha384 = existing.sha384
        if found.differs is Differs.CONTENT_SHA384:  # hashed, as it recorded none: remembered all the same
            stored_sha384 = str(found.found)
            existing = self._remember_sha384(existing, stored_sha384)
        raise StorageError(
            f"{self.uri}: {existing.name} already exists with other content "
            f"({existing.size} bytes, sha384 {stored_sha384}; ours: {size} bytes, sha384 {sha384}); "
            "content-addressed objects are never overwritten"
        )

    def _remember_sha384(self, info: ObjectInfo, sha384: str) -> ObjectInfo:
        """Hook: record a sha384 computed on demand, where the implementation can."""
        return ObjectInfo(info.name, info.size, sha384, info.generation, info.url)


class UploadReader:
    """Wraps the source file for an upload: advances progress by new bytes and hashes them.

    Uploaders may seek back to resend a chunk; such bytes are neither counted nor hashed twice.
    """

    def __init__(self, stream: BinaryIO, progress_task: Task | None) -> None:
        self._stream = stream
        self._progress_task = progress_task
        self._digest = hashlib.sha384()
        self._hashed_upto = 0
        self._hash_has_gap = False

    def read(self, size: int = -1) -> bytes:
        start = self._stream.tell()
        data = self._stream.read(size)
        end = start + len(data)
        if end > self._hashed_upto:
            if start > self._hashed_upto:
                self._hash_has_gap = True  # skipped bytes: sha384() reports None, callers re-hash the file
            self._digest.update(data[max(self._hashed_upto - start, 0):])
            fresh = end - self._hashed_upto
            self._hashed_upto = end
            if self._progress_task is not None:
                self._progress_task.advance(fresh)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def sha384(self) -> str | None:
        """The hash of everything read, or None if the reader skipped bytes."""
        return None if self._hash_has_gap else self._digest.hexdigest()


def sha384_of_file(path: Path) -> str:
    digest = hashlib.sha384()
    with path.open("rb") as stream:
        while block := stream.read(HASH_BLOCK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def verify_sent_sha384(reader: UploadReader, source: Path, expected: str, name: str) -> None:
    sent = reader.sha384() or sha384_of_file(source)
    if sent != expected:
        raise StorageError(f"{source} changed or is not what was hashed: sha384 {sent}, expected {expected} for {name}")


def check_object_name(name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or "\0" in name or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"invalid object name {name!r}: use non-empty '/'-separated parts, no '.' or '..'")
    return name


# Bucket URIs -------------------------------------------------------------------------------------

# GCS bucket naming rules: 3-63 characters (up to 222 with dots), lowercase letters, digits, '-', '_', '.'.
_GCS_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


@dataclass(frozen=True)
class LocalLocation:
    root: Path

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def default_download_url(self) -> str:
        return self.root.as_uri()


@dataclass(frozen=True)
class GcsLocation:
    bucket: str
    prefix: str  # no leading or trailing '/'; '' for the whole bucket

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"

    def default_download_url(self) -> str:
        base = f"https://storage.googleapis.com/{self.bucket}"
        return f"{base}/{self.prefix}" if self.prefix else base


BucketLocation = LocalLocation | GcsLocation


def parse_bucket_uri(uri: str) -> BucketLocation:
    shown = redact(uri.strip())
    parts = urlsplit(uri.strip())
    if parts.query or parts.fragment:
        raise BucketUriError(f"bucket URI {shown} must not have a query or fragment; use {SUPPORTED_URIS}")
    if parts.scheme == "file":
        return _parse_file_uri(parts.netloc, parts.path, shown)
    if parts.scheme == "gs":
        return _parse_gs_uri(parts.netloc, parts.path, shown)
    scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
    raise BucketUriError(f"unsupported bucket URI {shown} ({scheme}); use {SUPPORTED_URIS}")


def _parse_file_uri(netloc: str, path: str, shown: str) -> LocalLocation:
    if netloc not in ("", "localhost") or not path.startswith("/"):
        raise BucketUriError(f"bucket URI {shown} needs an absolute path: file:///absolute/path")
    root = Path(unquote(path))
    if any(part in (".", "..") for part in root.parts):
        raise BucketUriError(f"bucket URI {shown} must not contain '.' or '..' path segments")
    return LocalLocation(root)


def _parse_gs_uri(netloc: str, path: str, shown: str) -> GcsLocation:
    if not _GCS_BUCKET_NAME.fullmatch(netloc) or ("." not in netloc and len(netloc) > 63):
        raise BucketUriError(f"bucket URI {shown} has no valid bucket name: use gs://bucket[/prefix]")
    prefix = path.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise BucketUriError(f"bucket URI {shown} has an empty, '.' or '..' prefix segment")
    return GcsLocation(netloc, prefix)


def open_bucket(uri: str, *, download_url: str | None = None, credentials: Credentials | None = None,
                retry_seconds: float | None = None) -> Bucket:
    """Open `gs://bucket[/prefix]` or `file:///abs/path`. GCS credentials and the retry deadline come
    from the arguments or, when None, from the environment on first use (see storage.settings)."""
    location = parse_bucket_uri(uri)
    download_base = download_url or location.default_download_url()
    if isinstance(location, LocalLocation):
        from exchange_cli.storage.local import LocalBucket

        return LocalBucket(location.root, download_url=download_base)
    from exchange_cli.storage.gcs import GcsBucket

    return GcsBucket(location.bucket, location.prefix, download_url=download_base, credentials=credentials,
                     retry_seconds=retry_seconds)
