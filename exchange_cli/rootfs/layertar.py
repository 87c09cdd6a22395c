"""Random access to the entries of one uncompressed layer tar, through a read-only memory map.

The map makes a header a slice (no system call, no buffer to refill after a seek) and lets a small
file's data go to the output with a single copy; a large file's data is read straight into the
output block instead (`pread`), which maps nothing. The blob cache replaces files by rename and evicts by
unlink, never truncating one in place, so a mapped layer cannot shrink under the reader. Pages
already read are handed back now and then (`release`): the kernel keeps them cached, and a later
read maps them again.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

from ..image.model import LayerBlob
from .errors import LayerError
from .tarheader import (
    BLKTYPE,
    BLOCK,
    CHECKSUM_AS_SPACES,
    CHRTYPE,
    DIRTYPE,
    EXTENDED_TYPES,
    FIFOTYPE,
    LNKTYPE,
    PLAIN_DEVICES,
    PLAIN_FIELDS,
    PLAIN_TYPES,
    REGULAR_TYPES,
    SYMTYPE,
    USTAR_MAGIC,
    Header,
    LayerEntry,
    TarFormatError,
    decode_number,
    decode_text,
    header_sum,
    parse_header,
    read_entry,
    until_nul,
    ustar_name,
)

CHUNK = 1 << 20
# Mapped pages count in the process's RSS although they are the kernel's page cache: give them back
# every RELEASE_STEP bytes read, so that memory stays what the tree needs.
RELEASE_STEP = 8 << 20
# Enough for PAX records carrying many large xattrs or a PATH_MAX name, far below a memory problem.
MAX_EXTENDED_HEADER = 16 << 20
SUPPORTED_TYPES = REGULAR_TYPES | {LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE}


class LayerTar:
    """One layer's tar file, mapped for reading; close it (or use it as a context manager)."""

    def __init__(self, blob: LayerBlob) -> None:
        self.blob = blob
        self.file = open(blob.tar_path, "rb")  # noqa: SIM115 - held for the mapping's life; closed by close()
        self.fd = self.file.fileno()
        self.size = size = self.file.seek(0, 2)
        # mmap refuses an empty file; an empty layer is an empty buffer.
        self.buffer: mmap.mmap | bytes = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ) if size else b""
        self.view = memoryview(self.buffer)
        self.data_bytes = 0  # bytes of regular-file data, once `entries` has read the whole layer
        self.entry_count = 0  # entries, once `entries` has read the whole layer

    def __enter__(self) -> LayerTar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def release(self, start: int = 0, end: int | None = None) -> None:
        """Unmap the pages between `start` and `end` (all by default); reading them again maps them again."""
        if isinstance(self.buffer, mmap.mmap):
            start -= start % mmap.PAGESIZE
            end = self.size if end is None else min(end, self.size)
            if end > start:
                self.buffer.madvise(mmap.MADV_DONTNEED, start, end - start)

    def close(self) -> None:
        self.view.release()
        if isinstance(self.buffer, mmap.mmap):
            self.buffer.close()
        self.file.close()

    def error(self, entry: str, reason: str) -> LayerError:
        return LayerError(self.blob.digest, entry, reason)

    def entries(self) -> Iterator[LayerEntry]:
        """Every entry in archive order, checked so that `header_at` and the data range are safe.

        A header as nearly every writer spells it (one block, canonical numbers and checksum) is
        taken apart here; anything else goes through `read_entry`, which these must agree with.
        """
        offset = 0
        buffer, size = self.buffer, self.size
        release_at = RELEASE_STEP
        data = 0  # regular files' bytes: at most what the flattener copies from this layer
        count = 0
        make = tuple.__new__
        while True:
            if offset >= release_at:
                self.release(0, offset - offset % mmap.PAGESIZE)
                release_at = offset + RELEASE_STEP
            block = buffer[offset:offset + BLOCK]
            type = block[156:157]
            if (type in PLAIN_TYPES and len(block) == BLOCK and PLAIN_FIELDS.match(block, 100, 156)
                    and PLAIN_DEVICES.match(block, 329, 345)
                    and header_sum(block) - sum(block[148:156]) + CHECKSUM_AS_SPACES == int(block[148:154], 8)):
                end = block.find(b"\0", 0, 100)
                name = block[:end] if end >= 0 else block[:100]
                if block[345] and block[257:263] == USTAR_MAGIC:
                    name = ustar_name(block)
                linkname = decode_text(until_nul(block[157:257])) if type == LNKTYPE else ""
                entry = make(LayerEntry, (offset, name.decode("utf-8", "surrogateescape"), type,
                                          int(block[124:135], 8), linkname, offset + BLOCK, False, False))
            else:
                try:
                    read = read_entry(buffer, offset, max_extended=MAX_EXTENDED_HEADER)
                except TarFormatError as error:
                    raise self.error(f"<header at byte {offset}>", f"invalid tar header: {error}") from None
                if read is None:
                    self.release()
                    self.data_bytes, self.entry_count = data, count
                    return
                entry = read
                if entry.type not in SUPPORTED_TYPES:
                    raise self.error(entry.name, f"unsupported tar entry type {entry.type!r}")
                if entry.sparse:
                    raise self.error(entry.name, "sparse files are not supported")
            if entry.type in REGULAR_TYPES:
                data += entry.size
                if entry.offset_data + entry.size > size:
                    raise self.error(entry.name, f"declares {entry.size} bytes of data, past the end of the layer file")
                offset = entry.offset_data + -(-entry.size // BLOCK) * BLOCK
            else:
                offset = entry.offset_data
            count += 1
            yield entry

    def data_span_at(self, offset: int) -> tuple[int, int]:
        """Where the data of the entry `entries` yielded with this `.offset` lies: its offset in the file and
        its size. A header with no extended one before it is read in place (its size field alone);
        header_at, which decodes every field, costs five times more."""
        block = self.buffer[offset:offset + BLOCK]
        if block[156:157] not in EXTENDED_TYPES:
            return offset + BLOCK, decode_number(block[124:136], "size")
        header = self.header_at(offset)
        return header.offset_data, header.size

    def header_at(self, offset: int) -> Header:
        """Every field of the header `entries` yielded with this `.offset` (its checksums were verified)."""
        try:
            header = parse_header(self.buffer, offset, max_extended=MAX_EXTENDED_HEADER, verify=False)
        except TarFormatError as error:  # not after `entries` accepted it: the file cannot change
            raise self.error(f"<header at byte {offset}>", f"invalid tar header: {error}") from None
        assert header is not None, f"no header at byte {offset}"
        return header
