"""A bucket in Google Cloud Storage (`gs://bucket[/prefix]`).

Uploads are create-only (`ifGenerationMatch=0`) and, above 8 MiB, resumable in `chunk_size` chunks, so
the object only exists once the last chunk is finalised; smaller files go in one multipart request,
equally all-or-nothing. The sha384 is stored as custom metadata `sha384`. An upload abandoned midway
leaves an unfinished resumable session, which GCS discards after a week without creating an object.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote

from exchange_cli.errors import redact
from exchange_cli.progress import Task
from exchange_cli.storage.bucket import (
    MAX_CONTROL_BYTES,
    Bucket,
    GcsLocation,
    ObjectChanged,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    UploadReader,
    _CreateRaced,
    check_object_name,
    verify_sent_sha384,
)
from exchange_cli.storage.settings import RETRY_SECONDS_ENV, gcs_credentials, gcs_retry_seconds

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.auth.credentials import Credentials
    from google.cloud.storage import Blob, Client
    from google.cloud.storage import Bucket as GoogleBucket

RESUMABLE_CHUNK_GRANULARITY = 256 * 1024  # GCS requires chunk sizes in multiples of this
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
SHA384_METADATA_KEY = "sha384"
# Tells our own create-only upload apart from a concurrent writer's when a retried request gets 412.
UPLOAD_TOKEN_METADATA_KEY = "exchange-upload"
CONTROL_PREFIX = ".exchange-"  # control objects (the lease): never listed, as in a local bucket
_CONTENT_TYPES = {".tgz": "application/gzip", ".gz": "application/gzip", ".json": "application/json"}


class GcsBucket(Bucket):
    def __init__(self, bucket_name: str, prefix: str = "", *, download_url: str | None = None,
                 credentials: Credentials | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 retry_seconds: float | None = None) -> None:
        if chunk_size <= 0 or chunk_size % RESUMABLE_CHUNK_GRANULARITY:
            raise ValueError(f"chunk_size must be a positive multiple of {RESUMABLE_CHUNK_GRANULARITY}")
        location = GcsLocation(bucket_name, prefix.strip("/"))
        self.bucket_name, self.prefix, self.uri = location.bucket, location.prefix, location.uri
        self.chunk_size = chunk_size
        self._download_base = (download_url or location.default_download_url()).rstrip("/")
        self._credentials = credentials
        self._retry_seconds = retry_seconds  # None: from the environment (settings.gcs_retry_seconds)
        self._client: Client | None = None
        self._google_bucket: GoogleBucket | None = None

    def stat(self, name: str) -> ObjectInfo | None:
        with self._google_errors(f"looking up {name}"):
            blob = self._bucket().get_blob(self._key(name), retry=self._retry())
        return None if blob is None else self._info(blob)

    def delete(self, name: str, *, generation: str | None = None) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed
        with self._google_errors(f"deleting {name}"):
            blob = self._bucket().blob(self._key(name))
            try:
                blob.delete(if_generation_match=_generation_number(generation), retry=self._retry())
            except NotFound:
                return False
            except PreconditionFailed:
                raise ObjectChanged(
                    f"{self.uri}: not deleting {name}: it was replaced since generation {generation}") from None
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._google_errors(f"listing {prefix or 'objects'}"):
            for blob in self._client_for_use().list_blobs(self._bucket(), prefix=self._key_prefix() + prefix,
                                                          retry=self._retry()):
                if not blob.name.endswith("/") and not _is_control(blob.name):  # nor "folders" made by consoles
                    yield self._info(blob)

    def open_read(self, name: str) -> BinaryIO:
        with self._google_errors(f"opening {name}"):
            blob = self._bucket().get_blob(self._key(name), retry=self._retry())
        if blob is None:
            raise ObjectNotFound(f"{self.uri}: no object {name}")
        # Pinned to the generation we looked up: a concurrent replace fails the read instead of mixing content.
        reader = blob.open("rb", chunk_size=self.chunk_size, if_generation_match=blob.generation, retry=self._retry())
        # Not a whole BinaryIO: what readers of an object use (read, close, `with`).
        return _GuardedReader(reader, lambda: self._google_errors(f"reading {name}"))  # type: ignore[return-value]

    def create_control(self, name: str, data: bytes) -> str:
        from google.api_core.exceptions import PreconditionFailed

        blob = self._bucket().blob(self._control_key(name))
        with self._google_errors(f"creating {name}"):
            try:
                blob.upload_from_string(data, content_type="application/json", if_generation_match=0)
            except PreconditionFailed:
                raise ObjectExists(f"{self.uri}: {name} exists") from None
        return self._generation_of(blob, name)

    def read_control(self, name: str) -> tuple[bytes, str] | None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        with self._google_errors(f"reading {name}"):
            blob = self._bucket().get_blob(self._control_key(name), retry=self._retry())
            if blob is None:
                return None
            generation = self._generation_of(blob, name)
            try:
                # `end` is inclusive: one byte past the cap tells a reader the object is longer.
                return blob.download_as_bytes(end=MAX_CONTROL_BYTES, if_generation_match=blob.generation), generation
            except (NotFound, PreconditionFailed):
                return None  # replaced or removed while we read: as if we had looked a moment later

    def replace_control(self, name: str, data: bytes, generation: str) -> str:
        from google.api_core.exceptions import PreconditionFailed

        blob = self._bucket().blob(self._control_key(name))
        with self._google_errors(f"replacing {name}"):
            try:
                blob.upload_from_string(data, content_type="application/json",
                                        if_generation_match=_generation_number(generation))
            except PreconditionFailed:
                raise ObjectChanged(f"{self.uri}: {name} is no longer at generation {generation}") from None
        return self._generation_of(blob, name)

    def delete_control(self, name: str, generation: str) -> bool:
        return self.delete(self._control_key(name)[len(self._key_prefix()):], generation=generation)

    def _control_key(self, name: str) -> str:
        if not name.startswith(CONTROL_PREFIX) or "/" in name:
            raise StorageError(f"invalid control object name {name!r}: one part starting with {CONTROL_PREFIX!r}")
        return self._key_prefix() + name

    def download_url(self, name: str) -> str:
        return f"{self._download_base}/{quote(check_object_name(name))}"

    def _create(self, name: str, source: Path, *, size: int, sha384: str, progress_task: Task | None) -> ObjectInfo:
        from google.api_core.exceptions import PreconditionFailed
        token = uuid.uuid4().hex
        blob = self._bucket().blob(self._key(name), chunk_size=self.chunk_size)
        blob.metadata = {SHA384_METADATA_KEY: sha384, UPLOAD_TOKEN_METADATA_KEY: token}
        with source.open("rb") as stream, self._google_errors(f"uploading {name}"):
            reader = UploadReader(stream, progress_task)
            try:
                blob.upload_from_file(reader, size=size, content_type=_content_type(name), if_generation_match=0,
                                      retry=self._retry(), checksum="auto")
            except PreconditionFailed:
                blob = self._bucket().get_blob(self._key(name), retry=self._retry())
                if blob is None or (blob.metadata or {}).get(UPLOAD_TOKEN_METADATA_KEY) != token:
                    raise _CreateRaced from None
                # A retried request of our own upload found the object it had already created.
        try:
            verify_sent_sha384(reader, source, sha384, name)
        except StorageError:
            self.delete(name, generation=self._generation_of(blob, name))
            raise
        return self._info(blob)

    def _generation_of(self, blob: Blob, name: str) -> str:
        """The generation the server gave `name`: what every later change of it is made conditional on.
        Without one (a proxy or an emulator that leaves it out) nothing could be changed safely: say so
        here, not later as a generation of "None"."""
        if blob.generation is None:
            raise StorageError(f"{self.uri}: {name}: the server returned no generation for it, so it cannot be "
                               "changed or deleted safely (is STORAGE_EMULATOR_HOST a GCS-compatible server?)")
        return str(blob.generation)

    def _info(self, blob: Blob) -> ObjectInfo:
        name = blob.name[len(self._key_prefix()):]
        generation = None if blob.generation is None else str(blob.generation)
        return ObjectInfo(name, int(blob.size or 0), (blob.metadata or {}).get(SHA384_METADATA_KEY), generation,
                          self.download_url(name))

    def _key(self, name: str) -> str:
        return self._key_prefix() + check_object_name(name)

    def _key_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _bucket(self) -> GoogleBucket:
        if self._google_bucket is None:
            self._google_bucket = self._client_for_use().bucket(self.bucket_name)
        return self._google_bucket

    def _retry(self) -> Retry:
        """The library's retry policy for transient errors, bounded by our deadline."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        retry: Retry = DEFAULT_RETRY.with_timeout(self._retry_deadline())  # google-cloud-storage is untyped
        return retry

    def _retry_deadline(self) -> float:
        if self._retry_seconds is None:
            self._retry_seconds = gcs_retry_seconds(os.environ)
        return self._retry_seconds

    def _client_for_use(self) -> Client:
        # Made on first use: opening a bucket (e.g. to validate options) needs no credentials yet.
        if self._client is None:
            self._client = make_client(self._credentials)
        return self._client

    @contextmanager
    def _google_errors(self, action: str) -> Iterator[None]:
        from google.api_core.exceptions import Forbidden, GoogleAPICallError, NotFound, RetryError, Unauthorized
        from google.auth.exceptions import GoogleAuthError
        from google.cloud.storage.exceptions import DataCorruption
        from requests.exceptions import RequestException

        try:
            yield
        except NotFound as error:
            raise StorageError(f"{self.uri}: {action}: not found ({shown(error.message)}); does the bucket exist?") from error
        except (Forbidden, Unauthorized) as error:
            raise StorageError(f"{self.uri}: {action}: permission denied ({shown(error.message)})") from error
        except GoogleAPICallError as error:
            raise StorageError(f"{self.uri}: {action} failed: {error.code} {shown(error.message)}") from error
        except DataCorruption as error:
            # The library has already tried to delete the object the server assembled.
            raise StorageError(f"{self.uri}: {action}: checksum mismatch, data corrupted in transit") from error
        except RetryError as error:
            raise StorageUnavailable(f"{self.uri}: {action}: {unreachable(error.cause)}; gave up after retrying for "
                                     f"{self._retry_deadline():g}s ({RETRY_SECONDS_ENV})") from error
        except GoogleAuthError as error:
            raise StorageUnavailable(f"{self.uri}: {action}: {unreachable(error)}") from error
        except RequestException as error:
            raise StorageUnavailable(f"{self.uri}: {action}: {unreachable(error)}") from error


def make_client(credentials: Credentials | None) -> Client:
    """A storage client: `credentials`, else those the environment configures (settings.gcs_credentials),
    else Application Default Credentials."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    if credentials is None:
        credentials = gcs_credentials(os.environ)
    # project=None: object operations need none, and it stops the client from guessing one.
    try:
        return storage.Client(project=getattr(credentials, "project_id", None), credentials=credentials)
    except DefaultCredentialsError:
        raise StorageError(
            "no Google Cloud credentials: set GCLOUD_SERVICE_ACCOUNT to a base64-encoded service-account key, "
            "or configure Application Default Credentials (gcloud auth application-default login)"
        ) from None


class _GuardedReader:
    """A blob reader whose failures (the server gone mid-download) are StorageErrors like every other call's."""

    def __init__(self, reader: BinaryIO, guard: Callable[[], AbstractContextManager[None]]) -> None:
        self._reader = reader
        self._guard = guard

    def read(self, size: int = -1) -> bytes:
        with self._guard():
            return self._reader.read(size)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> _GuardedReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _is_control(key: str) -> bool:
    return any(part.startswith(CONTROL_PREFIX) for part in key.split("/"))


def unreachable(error: BaseException | None) -> str:
    """What failed on the way to Google, in one line: which endpoint (storage, or the token endpoint that
    credentials are refreshed at), its address and the system's reason, e.g. 'Connection refused'."""
    from google.auth.exceptions import GoogleAuthError

    chain = list(_wrapped(error))
    if any(isinstance(item, GoogleAuthError) for item in chain):
        where = "cannot get an access token (Google authentication)"
    else:
        where = "cannot reach Google Cloud Storage"
    address = next((f" at {pool.host}:{pool.port}" for item in chain
                    if (pool := getattr(item, "pool", None)) is not None and getattr(pool, "host", None)), "")
    reason = next((item.strerror for item in chain if isinstance(item, OSError) and item.strerror), None)
    if reason is None and error is not None:
        reason = shown(str(error)) or type(error).__name__
    return f"{where}{address}: {reason}"


# A URL (or the path urllib3 quotes after "url: ") and its query or fragment.
_URL_QUERY = re.compile(r"(?P<url>\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*|(?<=url: )/[^\s?#'\"]*)[?#][^\s'\"]*",
                        re.IGNORECASE)
SHOWN_LIMIT = 300


def shown(text: str) -> str:
    """A message from the client libraries, fit for a log: one line, bounded, without URL queries. The
    library quotes the request's URL, and a resumable upload's (``upload_id=…``) is its session URI,
    which lets whoever holds it write the object with no other credential."""
    text = _URL_QUERY.sub(lambda match: match["url"] + "?…", redact(" ".join(text.split())))
    return text if len(text) <= SHOWN_LIMIT else text[:SHOWN_LIMIT] + "…"


def _wrapped(error: BaseException | None) -> Iterator[BaseException]:
    """`error` and every exception it wraps, as requests, urllib3 and google-auth nest them."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        item = pending.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        pending += [item.__cause__, item.__context__, getattr(item, "reason", None), getattr(item, "cause", None),
                    *(arg for arg in item.args if isinstance(arg, BaseException))]


def _generation_number(generation: str | None) -> int | None:
    if generation is None:
        return None
    if not generation.isdigit():
        raise StorageError(f"invalid GCS object generation {generation!r}")
    return int(generation)


def _content_type(name: str) -> str:
    return _CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
