"""The published rootfs tarball: the flattened tar through a deterministic gzip, hashed as written.

The gzip header `isal_zlib` writes for wbits=31 has mtime 0, no file name and OS 255, so the bytes
depend only on the tar stream, the pinned isal version, GZIP_LEVEL and COMPRESS_BLOCK.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Sequence

from isal import isal_zlib

from ..image.model import LayerBlob
from ..progress import Task
from .flatten import flatten

# isal level 1, for speed. Measured with benchmarks/flatten.py (one core of a shared VM):
#   1.5 GB tar of /usr/share, /usr/bin, /usr/local: level 0 ~460 MB/s, 47.4%; 1 ~425 MB/s, 42.0%;
#                                                   2 ~440 MB/s, 41.4%; 3 ~250 MB/s, 40.8%
#   0.7 GB tar of /usr/lib/x86_64-linux-gnu:       level 0 ~480 MB/s, 43.1%; 1 ~470 MB/s, 38.0%;
#                                                   2 ~450 MB/s, 37.5%; 3 ~265 MB/s, 37.0%
# Level 0 costs 12-13% more bytes to upload for little speed; 3 halves the speed for 1-2%.
# Changing the level changes every published sha384.
GZIP_LEVEL = 1
GZIP_WBITS = 31  # a gzip wrapper, not zlib or raw deflate
COMPRESS_BLOCK = 1 << 20  # part of the output format: see _GzipHashingSink


@dataclass(frozen=True)
class RootfsDigest:
    sha384: str  # hex, of the compressed bytes
    size: int  # bytes of compressed output
    entries: int  # tar entries, the root excluded


class _GzipHashingSink:
    """Compresses what is written, hashes the compressed bytes and passes them on to `target`.

    isal's output depends on how the input is split across `compress` calls, so the input is
    re-cut into blocks of exactly COMPRESS_BLOCK bytes: the gzip bytes are then a function of the
    tar bytes alone, whatever the sizes of the writes that produced them.
    """

    def __init__(self, target: BinaryIO, level: int) -> None:
        self.target = target
        self.compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, GZIP_WBITS)
        self.hasher = hashlib.sha384()
        self.pending = bytearray()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) < COMPRESS_BLOCK:
            return
        view = memoryview(self.pending)
        whole = len(self.pending) - len(self.pending) % COMPRESS_BLOCK
        for start in range(0, whole, COMPRESS_BLOCK):
            self._emit(self.compressor.compress(view[start:start + COMPRESS_BLOCK]))
        view.release()
        del self.pending[:whole]

    def finish(self) -> None:
        if self.pending:
            self._emit(self.compressor.compress(bytes(self.pending)))
            self.pending.clear()
        self._emit(self.compressor.flush())

    def _emit(self, compressed: bytes) -> None:
        if compressed:
            self.hasher.update(compressed)
            self.target.write(compressed)
            self.size += len(compressed)


def write_rootfs(layers: Sequence[LayerBlob], target: BinaryIO, *, progress_task: Task | None = None,
                 level: int = GZIP_LEVEL) -> RootfsDigest:
    """Write the gzip-compressed root filesystem of `layers` to `target`; return its sha384 and size."""
    sink = _GzipHashingSink(target, level)
    stats = flatten(layers, sink, progress_task=progress_task)
    sink.finish()
    return RootfsDigest(sink.hasher.hexdigest(), sink.size, stats.entries)
