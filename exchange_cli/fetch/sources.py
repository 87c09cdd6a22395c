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
