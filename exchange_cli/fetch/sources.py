"""Readable streams for the URLs a rootfs can live at: http(s)://, gs://bucket/object, file:///path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from ..errors import ExchangeError, UsageError, redact

HTTP_TIMEOUT_SECONDS = 60
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
def open_named_url(url: str, named_by: str | None) -> Iterator[BinaryIO]:
    """`open_url`, for a URL that a document names: refused when `refusal` says so."""
    refused = refusal(url, named_by)
    if refused is not None:
        raise RefusedLocation(refused)
    with open_url(url) as stream:
        yield stream


@contextlib.contextmanager
def open_url(url: str) -> Iterator[BinaryIO]:
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        with _open_http(url) as stream:
            yield stream
    elif scheme == "gs":
        with _open_gs(url) as stream:
            yield stream
    elif scheme == "file":
        with _open_file(url) as stream:
            yield stream
    else:
        raise UsageError(f"cannot download {redact(url)}: unsupported scheme; use {SUPPORTED_SCHEMES}")


@contextlib.contextmanager
def _open_http(url: str) -> Iterator[BinaryIO]:
    import requests

    try:
        response = requests.get(url, stream=True, timeout=HTTP_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise DownloadError(f"cannot download {redact(url)}: {type(error).__name__}") from None
    with response:
        if response.status_code != 200:
            raise DownloadError(f"cannot download {redact(url)}: HTTP {response.status_code} {response.reason}")
        # The raw stream, so gzip content is not decoded on the way: the hash is of the bytes published.
        response.raw.decode_content = False
        yield response.raw


@contextlib.contextmanager
def _open_gs(url: str) -> Iterator[BinaryIO]:
    from ..storage.bucket import open_bucket

    parts = urlsplit(url)
    path = PurePosixPath(unquote(parts.path))
    if not parts.netloc or not path.name:
        raise UsageError(f"cannot download {url}: a gs:// URL needs a bucket and an object name")
    prefix = str(path.parent).strip("/")
    bucket = open_bucket(f"gs://{parts.netloc}/{prefix}" if prefix else f"gs://{parts.netloc}")
    with bucket.open_read(path.name) as stream:
        yield stream


@contextlib.contextmanager
def _open_file(url: str) -> Iterator[BinaryIO]:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(f"cannot download {url}: a file:// URL needs an absolute local path")
    path = Path(unquote(parts.path))
    try:
        stream = path.open("rb")
    except OSError as error:
        raise DownloadError(f"cannot read {path}: {error.strerror}") from None
    with stream:
        yield stream
