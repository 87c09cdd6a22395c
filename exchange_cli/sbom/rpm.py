"""rpm's database in its current form: the sqlite file `rpmdb.sqlite` (Fedora 33+, RHEL 9, openSUSE).

Its `Packages` table holds one rpm header per package: big-endian counts `il` (index entries) and
`dl` (data bytes), `il` entries of (tag, type, offset, count), then the data. Only a few string
tags and the epoch are read, each checked to lie inside the data. The older Berkeley DB file
(`Packages`) and SUSE's ndb (`Packages.db`) are not read: named unsupported in the warnings (gate.py).
"""

from __future__ import annotations

import sqlite3
import struct

from .errors import Unreadable
from .model import Package

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_LICENSE, TAG_ARCH = 1000, 1001, 1002, 1003, 1014, 1022
TYPE_INT32, TYPE_STRING, TYPE_I18NSTRING = 4, 6, 9
MAX_INDEX = 1 << 16  # rpm's own limit on a header's index entries


def parse(path: str, data: bytes, limit: int) -> list[Package]:
    """Every package of the database, at most `limit` of them."""
    if data[18:20] == b"\x02\x02":
        # rpm keeps the file in WAL mode, which an in-memory copy cannot open; the header's two
        # format bytes say "rollback journal" instead (rpm checkpoints its WAL into the file on close).
        data = data[:18] + b"\x01\x01" + data[20:]
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        rows = connection.execute("SELECT blob FROM Packages ORDER BY hnum LIMIT ?", (limit,)).fetchall()
    except sqlite3.Error as error:
        raise Unreadable(f"{path}: not an rpm sqlite database ({error})") from None
    finally:
        connection.close()
    packages = []
    for (blob,) in rows:
        if isinstance(blob, bytes) and (package := _package(path, blob)) is not None:
            packages.append(package)
    return packages


def _package(path: str, blob: bytes) -> Package | None:
    tags = _tags(blob)
    name, version, release = tags.get(TAG_NAME), tags.get(TAG_VERSION), tags.get(TAG_RELEASE)
    if not isinstance(name, str) or not isinstance(version, str) or name == "gpg-pubkey":
        return None  # gpg-pubkey: the keys rpm imported, recorded as pseudo-packages
    full = f"{version}-{release}" if isinstance(release, str) and release else version
    qualifiers = []
    if isinstance(arch := tags.get(TAG_ARCH), str) and arch:
        qualifiers.append(("arch", arch))
    if isinstance(epoch := tags.get(TAG_EPOCH), int) and epoch:
        qualifiers.append(("epoch", str(epoch)))
    license_value = tags.get(TAG_LICENSE)
    licenses = (license_value,) if isinstance(license_value, str) and license_value else ()
    return Package("rpm", name, full, path, licenses, tuple(qualifiers))


def _tags(blob: bytes) -> dict[int, str | int]:
    """The wanted tags of one header blob; a malformed header gives what could be read safely."""
    if len(blob) < 8:
        return {}
    count, data_size = struct.unpack_from(">II", blob)
    start = 8 + 16 * count
    if count > MAX_INDEX or start + data_size > len(blob):
        return {}
    found: dict[int, str | int] = {}
    for index in range(count):
        tag, kind, offset, items = struct.unpack_from(">iiiI", blob, 8 + 16 * index)
        if tag not in (TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_LICENSE, TAG_ARCH):
            continue
        if not 0 <= offset < data_size:
            continue
        where = start + offset
        if kind == TYPE_INT32 and items >= 1 and offset + 4 <= data_size:
            found[tag] = struct.unpack_from(">i", blob, where)[0]
        elif kind in (TYPE_STRING, TYPE_I18NSTRING):
            end = blob.find(b"\0", where, start + data_size)
            if end >= 0:
                found[tag] = blob[where:end].decode("utf-8", "replace")
    return found
