"""Every byte read on someone else's say-so is bounded: in size, and for a transfer, in time.

A manifest says how large its rootfs is; a server can send more, forever, or one byte every few seconds.
`Bounded` wraps any stream (an HTTP body, a bucket object, a local file) and stops it with one error
line as soon as it holds more than its limit, or once the whole transfer has taken longer than its
deadline. The limits are the document's own where it states one (`rootfs-size`), else the fixed caps
below; the deadline is the registry client's rule (a floor plus the size at a minimum rate).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from .errors import ExchangeError

GiB = 1024**3
# A rootfs whose manifest records no size (an old pipeline's) is read at most this far.
ROOTFS_CEILING = 64 * GiB
MIN_RATE = 256 * 1024  # bytes per second, on average over a whole transfer
DEADLINE_FLOOR_ENV = "EXCHANGE_DOWNLOAD_FLOOR_SECONDS"
DEFAULT_FLOOR_SECONDS = 120.0  # every transfer may take this long, however small


READ_BLOCK = 1024 * 1024  # bytes asked of a stream at a time


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def read_at_most(stream: Readable, limit: int) -> bytes | None:
    """The whole of a stream that should hold a small document (a record, a token, an error body), or None
    when it holds more than `limit` bytes: read no further than one byte past the limit, and never cut
    short in silence (the caller says what None means). Streams with a deadline are read through Bounded."""
    data = bytearray()
    while block := stream.read(min(READ_BLOCK, limit + 1 - len(data))):
        data += block
        if len(data) > limit:
            return None
    return bytes(data)


class OverLimit(ExchangeError):
    """The stream held more bytes than it may, or took longer than it may."""


@dataclass(frozen=True)
class Limit:
    size: int  # bytes, at most
    what: str  # "the rootfs", "the envelope": for the message
    exact: bool = False  # the size is what the document says it holds, not a cap
    # The size the deadline allows for, when `size` is only a cap: a small document (an envelope, a
    # manifest) gets the floor alone, however large its cap.
    expected: int = 0

    def seconds(self) -> float:
        """How long the transfer may take: the floor, plus the size at the minimum rate."""
        return _floor() + (self.size if self.exact else self.expected) / MIN_RATE


def _floor() -> float:
    try:
        value = float(os.environ.get(DEADLINE_FLOOR_ENV) or DEFAULT_FLOOR_SECONDS)
    except ValueError:
        return DEFAULT_FLOOR_SECONDS
    return value if value > 0 else DEFAULT_FLOOR_SECONDS


def rootfs_limit(size: object) -> Limit:
    """What a rootfs download may hold: exactly the manifest's `rootfs-size` when it records one."""
    if isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= ROOTFS_CEILING:
        return Limit(size, "the rootfs", exact=True)
    return Limit(ROOTFS_CEILING, "the rootfs", expected=ROOTFS_CEILING)


class Bounded:
    """A binary stream read at most `limit.size` bytes far, within `expires` (a monotonic time)."""

    def __init__(self, stream: BinaryIO, limit: Limit, source: str, *, expires: float | None = None) -> None:
        self.stream, self.limit, self.source = stream, limit, source
        self.expires = expires if expires is not None else time.monotonic() + limit.seconds()
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        self.check_time()
        room = self.limit.size - self.received + 1  # one byte more than allowed tells that there is more
        block = self.stream.read(room if size < 0 else min(size, room))
        self.received += len(block)
        if self.received > self.limit.size:
            said = "the manifest says it holds" if self.limit.exact else "the most it may hold is"
            raise OverLimit(f"{self.source}: more than {self.limit.size:,} bytes, which {said} for "
                            f"{self.limit.what}; stopped reading")
        if not block:
            self.check_time()  # a connection cut by the deadline's watch reads as its end
        return block

    def read_all(self) -> bytes:
        """Everything the stream holds (it stops at its own limit and deadline with OverLimit)."""
        return b"".join(iter(lambda: self.read(READ_BLOCK), b""))

    def check_time(self) -> None:
        if time.monotonic() > self.expires:
            raise OverLimit(f"{self.source}: {self.limit.what} was not received within {self.limit.seconds():.0f} s "
                            f"({self.received:,} bytes received): the server is too slow or has stalled")

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> Bounded:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
