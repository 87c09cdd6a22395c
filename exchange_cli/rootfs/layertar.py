"""Random access to the entries of one uncompressed layer tar: headers by offset, data in chunks."""

from __future__ import annotations

import os
from typing import BinaryIO, Callable, Iterator

from ..image.model import LayerBlob
from .errors import LayerError
from .tarheader import (BLKTYPE, CHRTYPE, DIRTYPE, FIFOTYPE, LNKTYPE, REGULAR_TYPES, SYMTYPE, Header,
                        TarFormatError, read_header)

CHUNK = 1 << 20
# Enough for PAX records carrying many large xattrs or a PATH_MAX name, far below a memory problem.
MAX_EXTENDED_HEADER = 16 << 20
SUPPORTED_TYPES = REGULAR_TYPES | {LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE}


class LayerTar:
    """One layer's tar file, open for reading; close it (or use it as a context manager)."""

    def __init__(self, blob: LayerBlob) -> None:
        self.blob = blob
        self.file: BinaryIO = open(blob.tar_path, "rb")
        self.size = os.fstat(self.file.fileno()).st_size

    def __enter__(self) -> "LayerTar":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def error(self, entry: str, reason: str) -> LayerError:
        return LayerError(self.blob.digest, entry, reason)

    def headers(self) -> Iterator[Header]:
        """Every entry's header in archive order, checked so that `header_at` and `copy_data` are safe."""
        offset = 0
        while (header := self._read(offset)) is not None:
            self._check(header)
            yield header
            offset = header.next_offset

    def header_at(self, offset: int) -> Header:
        """The header that `headers` yielded with this `.offset`."""
        header = self._read(offset)
        if header is None:
            raise self.error(f"<header at byte {offset}>", "the header has disappeared from the layer file")
        return header

    def copy_data(self, header: Header, write: Callable[[bytes], object], advance: Callable[[int], None]) -> None:
        """Stream a regular file's data in CHUNK pieces; the block padding is the caller's."""
        self.file.seek(header.offset_data)
        remaining = header.size
        while remaining:
            chunk = self.file.read(min(CHUNK, remaining))
            if not chunk:
                raise self.error(header.name, "the layer file ends inside this entry's data")
            write(chunk)
            advance(len(chunk))
            remaining -= len(chunk)

    def _read(self, offset: int) -> Header | None:
        try:
            return read_header(self.file, offset, max_extended=MAX_EXTENDED_HEADER)
        except TarFormatError as error:
            raise self.error(f"<header at byte {offset}>", f"invalid tar header: {error}") from None

    def _check(self, header: Header) -> None:
        if header.type not in SUPPORTED_TYPES:
            raise self.error(header.name, f"unsupported tar entry type {header.type!r}")
        if header.issparse():
            raise self.error(header.name, "sparse files are not supported")
        if header.isreg() and header.offset_data + header.size > self.size:
            raise self.error(header.name, f"declares {header.size} bytes of data, past the end of the layer file")
