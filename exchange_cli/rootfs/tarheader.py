"""A lean tar header reader: one entry's header blocks (extended headers included) from an offset.

`tarfile` parses headers correctly but slowly (about 30 µs an entry), and its archive walk ends
quietly at a damaged header. This reader handles what layer tars contain: ustar and POSIX PAX (local
records; global ones are ignored, as Docker ignores them), GNU long names and link names, base-256
numbers, V7 directories. Names are decoded as UTF-8 with surrogateescape, so any byte sequence
round-trips and nothing depends on the locale.

Where PAX records and GNU long names disagree, the GNU long name wins, as in Go's archive/tar, which
Docker applies layers with.

Two readers share these rules. `read_entry` is pass one's: it checks every field of a header but
decodes only what indexing needs (name, type, size, hard-link target), with a fast path for the
plain ustar block almost every entry is. `parse_header` decodes everything, for the few entries
whose output header cannot be written from a template (see `headers.py`). Both read from a buffer
(the layer file's memory map), so a header costs no system call.
"""

from __future__ import annotations

import mmap
import re
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)

REGTYPE, AREGTYPE, CONTTYPE = b"0", b"\0", b"7"
LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = b"1", b"2", b"3", b"4", b"5", b"6"
PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK = b"x", b"g", b"L", b"K"
REGULAR_TYPES = frozenset((REGTYPE, AREGTYPE, CONTTYPE))
EXTENDED_TYPES = frozenset((PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK))

_DECIMAL_TIME = re.compile(rb"-?[0-9]+(\.[0-9]+)?")
CHECKSUM_AS_SPACES = 8 * ord(" ")
# The ustar block: name 0-100, mode 100, uid 108, gid 116, size 124, mtime 136, checksum 148, type 156,
# linkname 157-257, magic+version 257, uname 265, gname 297, devmajor 329, devminor 337, prefix 345-500.
# mode, uid, gid, size and mtime as nearly every writer spells them ("%07o\0", "%011o\0"), and the
# device numbers so or empty: one match instead of five decodings, whose only purpose here is to
# reject a damaged header; anything else is checked field by field. PLAIN_FIELDS adds the checksum
# as Go, GNU tar, bsdtar and Python write it ("%06o\0 ").
_PLAIN_NUMBERS = re.compile(rb"[0-7]{7}\0[0-7]{7}\0[0-7]{7}\0[0-7]{11}\0[0-7]{11}\0")
PLAIN_FIELDS = re.compile(rb"[0-7]{7}\0[0-7]{7}\0[0-7]{7}\0[0-7]{11}\0[0-7]{11}\0[0-7]{6}\0 ")
PLAIN_DEVICES = re.compile(rb"(?:[0-7]{7}\0|\0{8}){2}")
# Types whose header is one block and never a V7 directory (AREGTYPE is, with a trailing slash).
PLAIN_TYPES = frozenset((REGTYPE, CONTTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE))
USTAR_MAGIC = b"ustar\0"
# What the readers read from: a layer file's memory map, or bytes; a slice of either is bytes.
TarBuffer = bytes | mmap.mmap


class TarFormatError(ValueError):
    """The bytes are not a valid tar header; the message says what is wrong."""


@dataclass(slots=True)
class Header:
    """One entry, as its ustar block and the extended headers before it describe it."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str
    uname: str
    gname: str
    devmajor: int
    devminor: int
    offset: int  # of the entry's first block, extended headers included
    offset_data: int  # of its data; the next entry starts after the data, rounded up to a block
    mtime_text: str = ""  # a PAX mtime with a fraction, verbatim
    pax_headers: dict[str, str] = field(default_factory=dict)  # every local PAX record

    @property
    def next_offset(self) -> int:
        data = self.size if self.type in REGULAR_TYPES else 0
        return self.offset_data + -(-data // BLOCK) * BLOCK

    def isreg(self) -> bool:
        return self.type in REGULAR_TYPES

    def isdir(self) -> bool:
        return self.type == DIRTYPE

    def issym(self) -> bool:
        return self.type == SYMTYPE

    def islnk(self) -> bool:
        return self.type == LNKTYPE

    def ischr(self) -> bool:
        return self.type == CHRTYPE

    def isblk(self) -> bool:
        return self.type == BLKTYPE

    def issparse(self) -> bool:
        return any(key.startswith("GNU.sparse.") for key in self.pax_headers)


class LayerEntry(NamedTuple):
    """What pass one needs of an entry: the rest of its header is decoded only if it is written."""

    offset: int  # of the entry's first block, extended headers included
    name: str
    type: bytes
    size: int
    linkname: str  # decoded only for hard links, whose target pass one resolves; else ""
    offset_data: int
    extended: bool  # extended headers precede the ustar block: the output needs `parse_header`
    sparse: bool

    @property
    def next_offset(self) -> int:
        data = self.size if self.type in REGULAR_TYPES else 0
        return self.offset_data + -(-data // BLOCK) * BLOCK


def read_entry(buffer: TarBuffer, offset: int, *, max_extended: int) -> LayerEntry | None:
    """The entry whose first block is at `offset` of `buffer`, or None at the end of the archive.

    Every field is checked as `parse_header` checks it, and the same errors are raised.
    """
    block = buffer[offset:offset + BLOCK]
    if block == ZERO_BLOCK or not block:
        return None
    if len(block) < BLOCK:
        raise TarFormatError("the layer file ends inside a tar header")
    _verify_checksum(block)
    type = block[156:157]
    if type in EXTENDED_TYPES:
        header = parse_header(buffer, offset, max_extended=max_extended)
        assert header is not None  # a header block is there: it was just read
        linkname = header.linkname if header.type == LNKTYPE else ""
        return LayerEntry(offset, header.name, header.type, header.size, linkname, header.offset_data, True,
                          header.issparse())
    name = ustar_name(block)
    if type == AREGTYPE and name.endswith(b"/"):
        type = DIRTYPE  # a V7 directory
    if _PLAIN_NUMBERS.match(block, 100, 148) and PLAIN_DEVICES.match(block, 329, 345):
        size = int(block[124:135], 8)
    else:
        size = _numbers(block)[3]
        if size < 0:
            raise TarFormatError(f"negative size {size}")
    linkname = decode_text(until_nul(block[157:257])) if type == LNKTYPE else ""
    return LayerEntry(offset, decode_text(name), type, size, linkname, offset + BLOCK, False, False)


def parse_header(buffer: TarBuffer, offset: int, *, max_extended: int, verify: bool = True) -> Header | None:
    """The entry whose first block is at `offset` of `buffer`, every field decoded; None at the end.

    Extended headers (PAX records, GNU long names) larger than `max_extended` bytes are refused
    before they are read. `verify=False` skips the checksums, for a header `read_entry` checked.
    """
    position = offset
    pax: dict[str, str] = {}
    long_name: bytes | None = None
    long_link: bytes | None = None
    while True:
        block = buffer[position:position + BLOCK]
        if not block or block == ZERO_BLOCK:
            if position != offset:
                raise TarFormatError("the archive ends after an extended header, without its entry")
            return None
        if len(block) < BLOCK:
            raise TarFormatError("the layer file ends inside a tar header")
        if verify:
            _verify_checksum(block)
        type = block[156:157]
        position += BLOCK
        if type not in EXTENDED_TYPES:
            return _header(block, type, offset, position, pax, long_name, long_link)
        size = decode_number(block[124:136], "size")
        if not 0 <= size <= max_extended:
            raise TarFormatError(f"an extended header declares {size} bytes, more than the {max_extended} allowed")
        data = buffer[position:position + size]
        if len(data) < size:
            raise TarFormatError("the layer file ends inside an extended header")
        position += -(-size // BLOCK) * BLOCK
        if type == PAX_LOCAL:
            pax.update(_pax_records(data))
        elif type == GNU_LONGNAME:
            long_name = data.split(b"\0", 1)[0]
        elif type == GNU_LONGLINK:
            long_link = data.split(b"\0", 1)[0]
        else:
            _pax_records(data)  # a global header must still be well formed; its records are ignored


def header_sum(block: bytes) -> int:
    """The unsigned byte sum of a 512-byte block, in C: Adler-32's low half is 1 + the byte sum mod
    65521, exact for 256 bytes (at most 65280); `sum(block)` costs seven times more."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def ustar_name(block: bytes) -> bytes:
    name = until_nul(block[:100])
    if block[257:263] == USTAR_MAGIC:  # POSIX ustar/PAX: a long name may be split into prefix/name
        prefix = until_nul(block[345:500])
        if prefix:
            name = prefix + b"/" + name
    return name


def _numbers(block: bytes) -> tuple[int, ...]:
    """mode, uid, gid, size, mtime, devmajor, devminor, decoded in the order errors are reported."""
    return (decode_number(block[100:108], "mode"), decode_number(block[108:116], "uid"), decode_number(block[116:124], "gid"),
            decode_number(block[124:136], "size"), decode_number(block[136:148], "mtime"),
            decode_number(block[329:337], "devmajor"), decode_number(block[337:345], "devminor"))


def _header(block: bytes, type: bytes, offset: int, offset_data: int, pax: dict[str, str],
            long_name: bytes | None, long_link: bytes | None) -> Header:
    name = ustar_name(block)
    if type == AREGTYPE and name.endswith(b"/"):
        type = DIRTYPE  # a V7 directory
    mode, uid, gid, size, mtime, devmajor, devminor = _numbers(block)
    header = Header(
        name=decode_text(name), type=type, mode=mode, uid=uid, gid=gid, size=size, mtime=mtime,
        linkname=decode_text(until_nul(block[157:257])), uname=decode_text(until_nul(block[265:297])),
        gname=decode_text(until_nul(block[297:329])), devmajor=devmajor, devminor=devminor,
        offset=offset, offset_data=offset_data, pax_headers=pax,
    )
    if pax:
        _apply_pax(header, pax)
    if long_name is not None:
        header.name = decode_text(long_name)
    if long_link is not None:
        header.linkname = decode_text(long_link)
    if header.size < 0:
        raise TarFormatError(f"negative size {header.size}")
    return header


def _apply_pax(header: Header, pax: dict[str, str]) -> None:
    for key, attribute in (("path", "name"), ("linkpath", "linkname"), ("uname", "uname"), ("gname", "gname")):
        if pax.get(key):
            setattr(header, attribute, pax[key])
    for key in ("size", "uid", "gid"):
        if pax.get(key):
            try:
                setattr(header, key, int(pax[key]))
            except ValueError:
                raise TarFormatError(f"PAX record {key}={pax[key]!r} is not a number") from None
    mtime = pax.get("mtime")
    if mtime:
        if not _DECIMAL_TIME.fullmatch(mtime.encode("utf-8", "surrogateescape")):
            raise TarFormatError(f"PAX record mtime={mtime!r} is not a decimal time")
        whole, _, fraction = mtime.partition(".")
        header.mtime = int(whole)
        header.mtime_text = mtime if fraction else ""


def _pax_records(data: bytes) -> dict[str, str]:
    """``"<length> <keyword>=<value>\\n"`` records; values are bytes, decoded to round-trip exactly."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        if data[position] == 0:  # some writers pad the record area with NULs
            break
        space = data.find(b" ", position, position + 21)
        try:
            length = int(data[position:space]) if space > position else 0
        except ValueError:
            length = 0
        record = data[position:position + length]
        if length <= 0 or len(record) < length or not record.endswith(b"\n") or b"=" not in record:
            raise TarFormatError(f"malformed PAX record at byte {position} of an extended header")
        keyword, _, value = record[space - position + 1:-1].partition(b"=")
        records[decode_text(keyword)] = decode_text(value)
        position += length
    return records


def _verify_checksum(block: bytes) -> None:
    try:
        recorded = int(until_nul(block[148:156]).strip() or b"-1", 8)
    except ValueError:
        raise TarFormatError("the header checksum field is not a number") from None
    unsigned = header_sum(block) - sum(block[148:156]) + CHECKSUM_AS_SPACES
    if recorded == unsigned:
        return
    # Some old writers summed signed bytes.
    signed = unsigned - 256 * sum(1 for byte in block[:148] + block[156:] if byte >= 128)
    if recorded != signed:
        raise TarFormatError("the header checksum does not match (not a tar header, or a damaged one)")


def decode_number(field: bytes, what: str) -> int:
    if field[0] & 0x80:  # GNU base-256 (0x80 positive, 0xff negative), for values octal cannot hold
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0xFF else value
    end = field.find(b"\0")
    digits = field if end < 0 else field[:end]
    try:
        return int(digits, 8) if digits.strip() else 0
    except ValueError:
        raise TarFormatError(f"the {what} field {field!r} is not an octal number") from None


def until_nul(field: bytes) -> bytes:
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")
