"""A directory served over plain HTTP on 127.0.0.1, in a thread of the test process (a stranger's web
server, a bucket's public URL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

from .http_thread import ServerThread


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """The base URL (no trailing slash) of `directory`, served until the block ends."""
    with ServerThread(partial(QuietHandler, directory=str(directory))) as server:
        yield server.url
