"""The headers of the output tar: POSIX ustar blocks, with PAX records only where ustar falls short.

Every output header is built from scratch rather than copied from the layer: the layer's own PAX
records may carry a stale path or size, or access/change times that would make the output depend on
when and where the layer was built. Only extended attributes and a sub-second mtime are carried over.

The blocks are encoded here rather than by `tarfile.TarInfo.tobuf`, so that the bytes (and the
published sha384) depend on this module alone, not on the Python version's tar writer, and so that
extended-attribute values are written as their raw bytes, as Go's archive/tar and GNU tar write them
(`tobuf` marks a whole extended header ``hdrcharset=BINARY`` as soon as one value is not UTF-8, and
binary ``security.capability`` values are common). ``hdrcharset=BINARY`` is used only when a path or
user name is not UTF-8, which is what the keyword is for.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from .tarheader import BLOCK, DIRTYPE, LNKTYPE, PAX_LOCAL, REGTYPE, SYMTYPE, Header, decode_number

KEPT_PAX_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")
_PAX_HEADER_NAME = b"././@PaxHeader"  # fixed, where GNU tar's default would embed its pid
_ENCODING = ("utf-8", "surrogateescape")  # how the layer's bytes were decoded; reverses exactly


class HeaderError(ValueError):
    """The layer's metadata cannot be written as a tar header; the message says which field."""


@dataclass
class OutputEntry:
    """One member of the output tar, every field as it will be written."""

    path: str
    type: bytes
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    mtime: int = 0
    mtime_text: str = ""  # a sub-second PAX mtime, kept verbatim
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, str] = field(default_factory=dict)  # PAX keyword -> value


def entry_from_layer(source: Header, path: str, *, hardlink_to: str | None = None) -> OutputEntry:
    """The output member for `path`, with the metadata of the layer's entry `source`."""
    out = OutputEntry(
        path=path, type=source.type, mode=source.mode & 0o7777, uid=source.uid, gid=source.gid,
        uname=source.uname, gname=source.gname, mtime=source.mtime, mtime_text=source.mtime_text,
    )
    if hardlink_to is not None:
        out.type, out.linkname = LNKTYPE, hardlink_to
        return out
    out.xattrs = {key: value for key, value in sorted(source.pax_headers.items()) if key.startswith(KEPT_PAX_PREFIXES)}
    if source.isreg():
        out.type, out.size = REGTYPE, source.size
    elif source.issym():
        # Linux has no symlink permissions: every extractor and `docker export` shows 0777, so a
        # layer's stray 0644 would only make the same tree hash differently.
        out.linkname, out.mode = source.linkname, 0o777
    elif source.ischr() or source.isblk():
        out.devmajor, out.devminor = source.devmajor, source.devminor
    return out


def implied_directory(path: str) -> OutputEntry:
    """A directory no layer has an entry for, as Docker creates it: 0755, root:root, mtime 0."""
    return OutputEntry(path=path, type=DIRTYPE, mode=0o755)


def encode(entry: OutputEntry) -> bytes:
    """The header blocks of `entry`: a PAX extended header if needed, then the ustar header."""
    name = _bytes(entry.path) + (b"/" if entry.type == DIRTYPE else b"")
    fields = _UstarFields(name=name, linkname=_bytes(entry.linkname), uname=_bytes(entry.uname),
                          gname=_bytes(entry.gname), uid=entry.uid, gid=entry.gid, size=entry.size,
                          mtime=entry.mtime)
    records = fields.move_overflow_to_pax()
    if entry.mtime_text:
        records["mtime"] = entry.mtime_text.encode("ascii")
    for key, value in entry.xattrs.items():
        records[key] = _bytes(value)
    header = _ustar_block(fields, entry)
    if not records:
        return header
    return _pax_header(records, binary=fields.binary_text) + header


@dataclass
class _UstarFields:
    name: bytes
    linkname: bytes
    uname: bytes
    gname: bytes
    uid: int
    gid: int
    size: int
    mtime: int
    binary_text: bool = False  # a PAX text record is not UTF-8: hdrcharset=BINARY

    def move_overflow_to_pax(self) -> dict[str, bytes]:
        """Replace what a ustar field cannot hold by a PAX record (the field then holds a stand-in)."""
        records: dict[str, bytes] = {}
        for attribute, keyword, width in (("name", "path", 100), ("linkname", "linkpath", 100),
                                          ("uname", "uname", 32), ("gname", "gname", 32)):
            value = getattr(self, attribute)
            if len(value) > width or not value.isascii():
                records[keyword] = value
                self.binary_text |= not _is_utf8(value)
                setattr(self, attribute, value[:width])  # a stand-in for readers without PAX support
        for attribute, digits in (("size", 11), ("uid", 7), ("gid", 7), ("mtime", 11)):
            value = getattr(self, attribute)
            if not 0 <= value < 8**digits:
                records[attribute] = str(value).encode("ascii")
                setattr(self, attribute, 0)
        return records


def _ustar_block(fields: _UstarFields, entry: OutputEntry) -> bytes:
    if not (0 <= entry.devmajor < 8**7 and 0 <= entry.devminor < 8**7):
        raise HeaderError(f"device numbers {entry.devmajor},{entry.devminor} do not fit a tar header")
    if not 0 <= entry.mode < 8**7:
        raise HeaderError(f"mode {entry.mode:o} does not fit a tar header")
    block = b"".join((
        fields.name.ljust(100, b"\0"),
        _octal(entry.mode, 8), _octal(fields.uid, 8), _octal(fields.gid, 8),
        _octal(fields.size, 12), _octal(fields.mtime, 12),
        b" " * 8,  # the checksum, counted as spaces
        entry.type,
        fields.linkname.ljust(100, b"\0"),
        b"ustar\x0000",
        fields.uname.ljust(32, b"\0"), fields.gname.ljust(32, b"\0"),
        _octal(entry.devmajor, 8), _octal(entry.devminor, 8),
        bytes(155 + 12),  # prefix (unused: long names go to PAX) and padding
    ))
    return _with_checksum(block)


# The whole ustar block; prefix and padding are zeros.
_PLAIN_USTAR = struct.Struct("100s24s24s8s1s100s8s64s16s167x")
_MAGIC = b"ustar\x0000"
_NO_DEVICE = b"0000000\x000000000\x00"
_NO_SIZE = b"%011o\0" % 0
_PLAIN_NUMBER_11 = re.compile(rb"[0-7]{11}\0")
_PLAIN_SIZE_AND_TIME = re.compile(rb"[0-7]{11}\0[0-7]{11}\0")
_CONSTANT_SUM = 8 * ord(" ") + sum(_MAGIC) + sum(_NO_DEVICE)
_CACHE_LIMIT = 4096  # distinct mode/owner spellings kept; a hostile layer cannot grow the cache past it


_Fields = tuple[bytes, int] | None  # output bytes and their sum; None: the entry needs PAX records


class PlainHeaders:
    """Output headers for the common entry, written without building an `OutputEntry`.

    An entry qualifies when its layer header is a lone ustar block (no PAX records, so no xattrs,
    sub-second time or overriding fields), it is a regular file, directory, symlink or fifo, and its
    path, link target and owner names are ASCII that fit their ustar fields. Its output header then
    differs from the layer's only in name, mode bits, size and checksum: the mode/uid/gid and
    uname/gname fields are translated once per distinct spelling and reused, the size and mtime
    fields are copied when already canonical, and the checksum is summed in C. The result is
    byte-identical to `encode(entry_from_layer(...))`, which tests check; every other entry goes
    that way.
    """

    def __init__(self) -> None:
        self._modes: dict[bytes, _Fields] = {}  # raw mode/uid/gid fields -> output fields
        self._symlink_modes: dict[bytes, _Fields] = {}
        self._owners: dict[bytes, _Fields] = {}  # raw uname/gname fields -> output fields

    def encode_into(self, buffer: bytearray, position: int, name: bytes, block: bytes, type: bytes) -> int:
        """Write the output header at `buffer[position:]`; the file size, or -1 if it cannot.

        `name` is the output path as bytes (a directory's ending in "/"), `block` the layer's ustar
        block, `type` the output type (REGTYPE, DIRTYPE, SYMTYPE or FIFOTYPE). -1 means that
        nothing was written and the entry needs `encode`.
        """
        if len(name) > 100 or not name.isascii():
            return -1
        if type == REGTYPE:
            if not _PLAIN_SIZE_AND_TIME.match(block, 124, 148):
                return -1
            size_and_time = block[124:148]
            size = int(block[124:135], 8)
        else:
            if not _PLAIN_NUMBER_11.match(block, 136, 148):
                return -1
            size_and_time = _NO_SIZE + block[136:148]
            size = 0
        link = b""
        if type == SYMTYPE:
            ids = self._symlink_modes.get(block[100:124], _UNSEEN)
            if ids is _UNSEEN:
                ids = _remember(self._symlink_modes, block[100:124], _symlink_mode_fields)
            link = block[157:257].split(b"\0", 1)[0]
            if not link.isascii():
                return -1
        else:
            ids = self._modes.get(block[100:124], _UNSEEN)
            if ids is _UNSEEN:
                ids = _remember(self._modes, block[100:124], _mode_fields)
        owners = self._owners.get(block[265:329], _UNSEEN)
        if owners is _UNSEEN:
            owners = _remember(self._owners, block[265:329], _owner_fields)
        if ids is None or owners is None:
            return -1
        # The sum of at most 224 bytes, in C: Adler-32's low half is 1 + the byte sum mod 65521.
        checksum = _CONSTANT_SUM + type[0] + ids[1] + owners[1] + (zlib.adler32(name + link + size_and_time) & 0xFFFF) - 1
        _PLAIN_USTAR.pack_into(buffer, position, name, ids[0], size_and_time, b"%06o\0 " % checksum, type, link,
                               _MAGIC, owners[0], _NO_DEVICE)
        return size


class _Unseen(Enum):
    """The default of a cache lookup that missed: a sentinel that mypy can tell apart from `_Fields`."""

    UNSEEN = 0


_UNSEEN: Final = _Unseen.UNSEEN


def _remember(cache: dict[bytes, _Fields], raw: bytes, translate: Callable[[bytes], _Fields]) -> _Fields:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    fields = cache[raw] = translate(raw)
    return fields


def _mode_fields(raw: bytes) -> _Fields:
    return _id_fields(decode_number(raw[0:8], "mode") & 0o7777, raw)


def _symlink_mode_fields(raw: bytes) -> _Fields:
    # Linux has no symlink permissions: see entry_from_layer.
    return _id_fields(0o777, raw)


def _id_fields(mode: int, raw: bytes) -> _Fields:
    uid, gid = decode_number(raw[8:16], "uid"), decode_number(raw[16:24], "gid")
    if not (0 <= uid < 8**7 and 0 <= gid < 8**7):
        return None  # a PAX record is needed
    fields = _octal(mode, 8) + _octal(uid, 8) + _octal(gid, 8)
    return fields, sum(fields)


def _owner_fields(raw: bytes) -> _Fields:
    uname, gname = raw[:32].split(b"\0", 1)[0], raw[32:].split(b"\0", 1)[0]
    if not (uname.isascii() and gname.isascii()):
        return None  # a PAX record is needed
    fields = uname.ljust(32, b"\0") + gname.ljust(32, b"\0")
    return fields, sum(fields)


def _pax_header(records: dict[str, bytes], *, binary: bool) -> bytes:
    body = b"".join(_pax_record(key.encode(*_ENCODING), value) for key, value in
                    ([("hdrcharset", b"BINARY")] if binary else []) + list(records.items()))
    header = b"".join((
        _PAX_HEADER_NAME.ljust(100, b"\0"),
        _octal(0o644, 8), _octal(0, 8), _octal(0, 8), _octal(len(body), 12), _octal(0, 12),
        b" " * 8, PAX_LOCAL, bytes(100), b"ustar\x0000", bytes(32 + 32), _octal(0, 8), _octal(0, 8),
        bytes(155 + 12),
    ))
    return _with_checksum(header) + body + bytes(-len(body) % BLOCK)


def _pax_record(keyword: bytes, value: bytes) -> bytes:
    """``"<length> <keyword>=<value>\\n"``, where the length counts its own digits."""
    payload = b" " + keyword + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(str(length)) + len(payload) != length:
        length = len(str(length)) + len(payload)
    return str(length).encode("ascii") + payload


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _with_checksum(block: bytes) -> bytes:
    assert len(block) == BLOCK, len(block)
    checksum = b"%06o\0 " % sum(block)
    return block[:148] + checksum + block[156:]


def _bytes(text: str) -> bytes:
    return text.encode(*_ENCODING)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
