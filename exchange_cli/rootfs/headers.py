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

from dataclasses import dataclass, field

from .tarheader import BLOCK, DIRTYPE, LNKTYPE, PAX_LOCAL, REGTYPE, Header

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
