"""How long a registry (or its token server, or where it redirects) may take, and how that is enforced.

Every read waits at most `read_timeout`; on top of that every document, blob and token has an
overall `Deadline`, retries included, of `floor` seconds plus its size at `min_rate` bytes per
second. Between reads of a body the deadline is checked by whoever reads it. While a request waits
for the status line and headers there is nobody to check it: a server that trickles them a byte
at a time, each within the read timeout, would keep the client waiting for hours. So the request
is sent `watched(deadline)`: a timer shuts the connection's socket down when the deadline passes,
the read fails at once, and the caller turns that into the deadline's error. Sessions get this by
`mount_watched_adapters`; requests and urllib3 do the rest as usual.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from ..bounded import DEFAULT_FLOOR_SECONDS, MIN_RATE


@dataclass(frozen=True)
class TransferLimits:
    """How long a registry may take: per read, and overall per document or blob (retries included)."""

    connect_timeout: float = 15.0
    read_timeout: float = 120.0  # seconds without a byte: the connection has stalled
    min_rate: float = MIN_RATE  # bytes per second, on average over the whole transfer
    floor: float = DEFAULT_FLOOR_SECONDS  # seconds every transfer may take, however small

    @property
    def timeout(self) -> tuple[float, float]:
        return self.connect_timeout, self.read_timeout

    def deadline(self, size: int, on_expiry: Callable[[str], Exception], server: str = "the registry") -> Deadline:
        allowed = self.floor + size / self.min_rate
        return Deadline(time.monotonic() + allowed, allowed, size, self.min_rate, on_expiry, server)


DEFAULT_LIMITS = TransferLimits()


@dataclass(frozen=True)
class Deadline:
    """The moment a transfer of `size` bytes must be done by; `check` raises what `on_expiry` makes."""

    expires: float
    allowed: float
    size: int
    min_rate: float
    on_expiry: Callable[[str], Exception]
    server: str = "the registry"

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def check(self, received: int | None = None) -> None:
        if self.remaining() >= 0:
            return
        got = "" if received is None else f" ({received} bytes received)"
        raise self.on_expiry(f"not received within {self.allowed:.0f} s{got}, the time {self.size} bytes may take "
                             f"at the minimum rate of {self.min_rate:.0f} bytes/s; {self.server} is too slow or has stalled")


class _Watch:
    """Shuts down the sockets a request waits on once `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self._expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to wait on
        sock.shutdown(socket.SHUT_RDWR)


_current: ContextVar[_Watch | None] = ContextVar("exchange_request_watch", default=None)


@contextmanager
def watched(deadline: Deadline | None) -> Iterator[None]:
    """Requests sent inside stop waiting for an answer when `deadline` passes (their read fails)."""
    if deadline is None:
        yield
        return
    watch = _Watch(deadline.remaining())
    token = _current.set(watch)
    watch.start()
    try:
        yield
    finally:
        watch.cancel()
        _current.reset(token)


class _WatchedConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        watch = _current.get()
        if watch is not None:
            watch.add(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections (direct or through an HTTP proxy) honour `watched`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are urllib3's own; only the read timeout there
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def mount_watched_adapters(session: requests.Session) -> None:
    for prefix in ("https://", "http://"):
        session.mount(prefix, _WatchedAdapter())
