"""The published rootfs tarball: the flattened tar through a deterministic gzip, hashed as written.

The gzip header has mtime 0, no file name and OS 255, so the bytes depend only on the tar stream,
the pinned isal version, GZIP_LEVEL and COMPRESS_BLOCK.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from isal import isal_zlib

from ..image.model import LayerBlob
from ..progress import Task
from .flatten import Watch, flatten
from .index import LayerIndex
from .squashfs import SquashfsSink, Tee

# isal level 1, for speed. Measured with benchmarks/flatten.py (one core of a shared VM):
#   1.5 GB tar of /usr/share, /usr/bin, /usr/local: level 0 ~460 MB/s, 47.4%; 1 ~425 MB/s, 42.0%;
#                                                   2 ~440 MB/s, 41.4%; 3 ~250 MB/s, 40.8%
#   0.7 GB tar of /usr/lib/x86_64-linux-gnu:       level 0 ~480 MB/s, 43.1%; 1 ~470 MB/s, 38.0%;
#                                                   2 ~450 MB/s, 37.5%; 3 ~265 MB/s, 37.0%
# Level 0 costs 12-13% more bytes to upload for little speed; 3 halves the speed for 1-2%.
# Changing the level changes every published sha384.
GZIP_LEVEL = 1
DEFLATE_WBITS = 15
DEFLATE_WINDOW = 1 << DEFLATE_WBITS
# magic, deflate, no flags, mtime 0, no extra flags, OS unknown: nothing about the machine or the time
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
COMPRESS_BLOCK = 1 << 20  # part of the output format: see _GzipHashingSink


class Output(Protocol):
    """Where the compressed bytes go: a binary file, or anything else that takes them in order."""

    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class RootfsDigest:
    sha384: str  # hex, of the compressed bytes
    size: int  # bytes of compressed output
    entries: int  # tar entries, the root excluded


class _GzipHashingSink:
    """Compresses what is written into one gzip member, hashes the compressed bytes, writes them on.

    Like pigz: the input is cut into blocks of exactly COMPRESS_BLOCK bytes, each compressed on its
    own as raw deflate, primed with the 32 KiB of input before it and ended with a sync flush, so
    the blocks join into one valid deflate stream. Blocks compress on every core at once (isal
    releases the GIL), yet the bytes depend only on the tar bytes, the level and COMPRESS_BLOCK:
    not on the number of threads, nor on the sizes of the writes that fed it.

    The writing thread only hands blocks over (a write of exactly one block is taken as is, not
    copied; the caller must not change it afterwards, unless it got it from `new_block`, which
    gives a block back only once it is compressed). One emitter thread takes the compressed blocks
    in order and does the rest (the CRC of the input, the sha384 and the write of the output), so
    none of that waits on the thread producing the tar. At most `in_flight` blocks wait, which
    bounds memory.
    """

    def __init__(self, target: Output, level: int, workers: int | None = None) -> None:
        self.target, self.level = target, level
        self.hasher = hashlib.sha384()
        self.pending = bytearray()
        self.dictionary = b""  # the last DEFLATE_WINDOW bytes handed over: the next block's dictionary
        self.spare_blocks: queue.SimpleQueue[bytearray] = queue.SimpleQueue()  # compressed and summed: reusable
        self.lent: set[int] = set()  # ids of the blocks `new_block` gave out: only those come back
        self.crc = 0
        self.length = 0
        self.size = 0
        workers = workers or os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rootfs-gzip")
        self.in_flight = threading.BoundedSemaphore(2 * workers + 2)
        self.compressed: queue.SimpleQueue[tuple[Future[tuple[bytes, bytes]], bytes | bytearray] | None] = queue.SimpleQueue()
        self.failure: BaseException | None = None
        self._emit(GZIP_HEADER)
        self.emitter = threading.Thread(target=self._emit_in_order, name="rootfs-gzip-emit", daemon=True)
        self.emitter.start()

    def new_block(self) -> bytearray:
        """A block of COMPRESS_BLOCK bytes to fill and `write` whole, recycled when one is free."""
        try:
            block = self.spare_blocks.get_nowait()
        except queue.Empty:
            block = bytearray(COMPRESS_BLOCK)
        self.lent.add(id(block))
        return block

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.pending and len(data) == COMPRESS_BLOCK and not isinstance(data, memoryview):
            self._submit(data, last=False)
            return
        self.pending += data
        if len(self.pending) < COMPRESS_BLOCK:
            return
        whole = len(self.pending) - len(self.pending) % COMPRESS_BLOCK
        for start in range(0, whole, COMPRESS_BLOCK):
            self._submit(bytes(self.pending[start:start + COMPRESS_BLOCK]), last=False)
        del self.pending[:whole]

    def finish(self) -> None:
        self._submit(bytes(self.pending), last=True)  # may be empty: it then only ends the stream
        self.pending.clear()
        self._stop_emitter()
        self.pool.shutdown()
        if self.failure is not None:
            raise self.failure
        self._emit(struct.pack("<II", self.crc, self.length & 0xFFFFFFFF))

    def abandon(self) -> None:
        self.failure = self.failure or _Abandoned()
        self._stop_emitter()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, block: bytes | bytearray, *, last: bool) -> None:
        if self.failure is not None:
            raise self.failure
        self.length += len(block)
        self.in_flight.acquire()
        self.compressed.put((self.pool.submit(_deflate_block, block, self.dictionary, self.level, last), block))
        # A copy, so that the block can be reused once compressed, whatever the next one's progress.
        self.dictionary = bytes(block[-DEFLATE_WINDOW:])

    def _stop_emitter(self) -> None:
        if self.emitter.is_alive():
            self.compressed.put(None)
            self.emitter.join()

    def _emit_in_order(self) -> None:
        while (item := self.compressed.get()) is not None:
            future, block = item
            try:
                if self.failure is None:
                    body, tail = future.result()
                    self.crc = isal_zlib.crc32(block, self.crc)
                    self._emit(body)
                    self._emit(tail)
                    if isinstance(block, bytearray) and id(block) in self.lent:  # one of ours, not a caller's
                        self.lent.discard(id(block))
                        self.spare_blocks.put(block)
            except BaseException as error:  # noqa: BLE001 - raised again in the writing thread
                self.failure = self.failure or error
            finally:
                self.in_flight.release()

    def _emit(self, compressed: bytes) -> None:
        if compressed:
            self.hasher.update(compressed)
            self.target.write(compressed)
            self.size += len(compressed)


class _Abandoned(Exception):
    pass


def _deflate_block(block: bytes | bytearray, dictionary: bytes, level: int, last: bool) -> tuple[bytes, bytes]:
    """The block's deflate bytes, in two pieces (joining them would copy the first)."""
    options = {"zdict": dictionary} if dictionary else {}
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -DEFLATE_WBITS, isal_zlib.DEF_MEM_LEVEL,
                                       isal_zlib.Z_DEFAULT_STRATEGY, **options)
    return compressor.compress(block), compressor.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)


def write_rootfs(layers: Sequence[LayerBlob], target: Output, *, progress_task: Task | None = None,
                 level: int = GZIP_LEVEL, index: LayerIndex | None = None, watch: Watch | None = None,
                 squashfs: SquashfsSink | None = None) -> RootfsDigest:
    """Write the gzip-compressed root filesystem of `layers` to `target`; return its sha384 and size.

    `index`: pass 1 of the first layers, if the caller started it; `watch`: see `flatten`;
    `squashfs`: also gets the same tar stream, in the same pass (finished or abandoned here)."""
    sink = _GzipHashingSink(target, level)
    try:
        stats = flatten(layers, sink if squashfs is None else Tee([squashfs, sink]), progress_task=progress_task,
                        index=index, watch=watch)
        sink.finish()
        if squashfs is not None:
            squashfs.finish()
    except BaseException:
        sink.abandon()
        if squashfs is not None:
            squashfs.abandon()
        raise
    return RootfsDigest(sink.hasher.hexdigest(), sink.size, stats.entries)
