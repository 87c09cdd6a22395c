"""Readable streams for the URLs a published thing can live at: http(s)://, gs://bucket/object, file:///path,
each read within a limit; and which URLs a document fetched from elsewhere may name (`refusal`). Below the
commands that fetch and verify, it knows nothing of catalogs or provenance."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, cast
from urllib.parse import unquote, urlsplit

from .bounded import Bounded, Limit, OverLimit
from .errors import ExchangeError, UsageError, redact

SUPPORTED_SCHEMES = "http(s)://, gs://bucket/object or file:///path"


class DownloadError(ExchangeError):
    pass


class RefusedLocation(ExchangeError):
    """A document fetched from elsewhere names a local file, or a bucket that is not ours."""


def refusal(url: str, named_by: str | None) -> str | None:
    """Why `url`, named in a document fetched from `named_by`, must not be opened; None when it may.

    Remote documents point only at remote things: whoever serves a manifest over http(s) must not make
    this machine read its own files (`file://`, hashed and reported) or a bucket with this machine's
    credentials. From an http(s) or gs:// document: http(s) URLs, and gs:// only in the exchange's own
    bucket (EXCHANGE_BUCKET_URI) or, for a gs:// document, its own bucket. A local document (a file, a
    manifest in the repository) may name anything it could name before.
    """
    if named_by is None or urlsplit(named_by).scheme == "file":
        return None
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        return None
    if scheme == "gs" and urlsplit(url).netloc in _own_buckets(named_by):
        return None
    return (f"{redact(url)} is named by {redact(named_by)}, a document from elsewhere, which may point only at "
            "http(s) URLs or the exchange's own bucket, never at this machine's files or another bucket")


def _own_buckets(named_by: str) -> set[str]:
    import os

    buckets = set()
    configured = os.environ.get("EXCHANGE_BUCKET_URI", "")
    if urlsplit(configured).scheme == "gs":
        buckets.add(urlsplit(configured).netloc)
    if urlsplit(named_by).scheme == "gs":
        buckets.add(urlsplit(named_by).netloc)
    return buckets


@contextlib.contextmanager
def open_named_url(url: str, named_by: str | None, limit: Limit) -> Iterator[Bounded]:
    """`open_url`, for a URL that a document names: refused when `refusal` says so."""
    refused = refusal(url, named_by)
    if refused is not None:
        raise RefusedLocation(refused)
    with open_url(url, limit) as stream:
        yield stream


@contextlib.contextmanager
def open_url(url: str, limit: Limit) -> Iterator[Bounded]:
    """A stream of what `url` holds, bounded (bounded.py): never more than `limit.size` bytes, never
    longer than its deadline, whatever the scheme."""
    scheme = urlsplit(url).scheme
    expires = time.monotonic() + limit.seconds()
    if scheme in ("http", "https"):
        opened = _open_http(url, expires)
    elif scheme == "gs":
        opened = _open_gs(url)
    elif scheme == "file":
        opened = _open_file(url, limit)
    else:
        raise UsageError(f"cannot download {redact(url)}: unsupported scheme; use {SUPPORTED_SCHEMES}")
    with opened as stream:
        yield Bounded(stream, limit, redact(url), expires=expires)


@contextlib.contextmanager
def _open_http(url: str, expires: float) -> Iterator[BinaryIO]:
    import requests

    from .web.deadlines import DEFAULT_LIMITS, Deadline, watched
    from .web.masking import SecretMask
    from .web.retries import DEFAULT_RETRY, TRANSIENT_STATUSES, Transient, retry_after, with_retries
    from .web.transport import RefusedURL, Transport, UrlPolicy, new_session

    # The one HTTP client (web/): per-read timeouts, redirects followed and checked hop by hop, no
    # credentials of requests' own (~/.netrc), a 5xx, a 429 or a dropped connection retried before the body. The whole transfer has a deadline: a timer shuts the
    # connection down when it passes, so a server that sends its headers or body a byte every few seconds
    # (each read within the read timeout) cannot keep us waiting; Bounded turns the cut connection into
    # the deadline's error.
    # The watch covers the body too (the transport's own covers a request's headers only).
    deadline = Deadline(expires, expires - time.monotonic(), 0, 0, DownloadError, "the server")
    with new_session() as session, watched(deadline):
        transport = Transport(session, UrlPolicy.downloads(), DEFAULT_LIMITS.timeout, SecretMask())

        def attempt() -> requests.Response:
            try:
                answer = transport.send("GET", url)
            except RefusedURL as refused:
                raise DownloadError(f"cannot download {redact(url)}: {refused.reason}") from None
            except requests.RequestException as error:
                if time.monotonic() > expires:
                    raise DownloadError(f"cannot download {redact(url)}: no answer before the deadline") from None
                if isinstance(error, requests.ConnectionError | requests.Timeout):
                    raise Transient(type(error).__name__) from None
                raise DownloadError(f"cannot download {redact(url)}: {type(error).__name__}") from None
            if answer.status_code in TRANSIENT_STATUSES:
                answer.close()
                raise Transient(f"HTTP {answer.status_code} {answer.reason}", retry_after(answer))
            return answer

        response = with_retries(DEFAULT_RETRY, attempt, failure=f"cannot download {redact(url)}", error=DownloadError)
        with response:
            if response.status_code != 200:
                raise DownloadError(f"cannot download {redact(url)}: HTTP {response.status_code} {response.reason}")
            # The raw stream, so gzip content is not decoded on the way: the hash is of the bytes published.
            response.raw.decode_content = False
            # Bounded (which types its stream BinaryIO) only reads and closes it: all _ReadErrors offers.
            yield cast(BinaryIO, _ReadErrors(response.raw, redact(url), expires))


class _Body(Protocol):
    """What _ReadErrors uses of urllib3's HTTPResponse."""

    def read(self, amt: int, /) -> bytes: ...

    def close(self) -> None: ...


class _ReadErrors:
    """A body whose read errors (a reset, a connection the deadline's watch cut) are the download's error."""

    def __init__(self, raw: _Body, shown: str, expires: float) -> None:
        self.raw, self.shown, self.expires = raw, shown, expires

    def read(self, size: int = -1) -> bytes:
        try:
            return self.raw.read(size)
        except Exception as error:  # noqa: BLE001 - urllib3 and requests raise several unrelated types here
            if time.monotonic() > self.expires:
                return b""  # Bounded reports the deadline
            raise DownloadError(f"cannot download {self.shown}: {type(error).__name__}") from None

    def close(self) -> None:
        self.raw.close()


@contextlib.contextmanager
def _open_gs(url: str) -> Iterator[BinaryIO]:
    from .storage.bucket import open_bucket

    parts = urlsplit(url)
    path = PurePosixPath(unquote(parts.path))
    if not parts.netloc or not path.name:
        raise UsageError(f"cannot download {url}: a gs:// URL needs a bucket and an object name")
    prefix = str(path.parent).strip("/")
    bucket = open_bucket(f"gs://{parts.netloc}/{prefix}" if prefix else f"gs://{parts.netloc}")
    with bucket.open_read(path.name) as stream:
        yield stream


@contextlib.contextmanager
def _open_file(url: str, limit: Limit) -> Iterator[BinaryIO]:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"cannot download {url}: a file:// URL needs an absolute local path")
    path = Path(unquote(parts.path))
    try:
        # Non-blocking open: a FIFO must not hang the run; it is refused below, as /dev/zero is.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise DownloadError(f"cannot read {path}: {error.strerror}") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise DownloadError(f"cannot read {path}: not a regular file")
    with os.fdopen(descriptor, "rb") as stream:
        if status.st_size > limit.size:
            raise OverLimit(f"{path}: {status.st_size:,} bytes, more than {limit.size:,} for {limit.what}")
        yield stream
