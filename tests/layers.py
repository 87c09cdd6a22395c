"""Hand-crafted layer tars for tests: entry builders, a layer writer, and compressed variants.

    layer = make_layer(tmp_path, [directory("etc"), file("etc/hosts", b"127.0.0.1 localhost\n"),
                                  whiteout("etc/motd"), opaque("var/cache"), hardlink("b", "a")])

Entries are written in the order given (a hostile layer's order is part of the test). `raw` writes
bytes verbatim for headers tarfile refuses to produce; `zeros` makes a large file without holding
or writing its data (the tar file is sparse).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import zstandard

from exchange_cli.image.model import LayerBlob

DEFAULT_MTIME = 1_600_000_000
TAR_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Entry:
    info: tarfile.TarInfo | None  # None: `raw` is written instead
    data: bytes = b""
    zero_bytes: int = 0  # data of this many NUL bytes, skipped over in the tar file (sparse)
    raw: bytes = b""


def _info(path: str, type: bytes, *, mode: int, uid: int = 0, gid: int = 0, uname: str = "", gname: str = "",
          mtime: float = DEFAULT_MTIME, xattrs: Mapping[str, bytes | str] | None = None,
          pax: Mapping[str, str] | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.uid, info.gid = type, mode, uid, gid
    info.uname, info.gname, info.mtime = uname, gname, mtime
    for key, value in (xattrs or {}).items():
        text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
        info.pax_headers[f"SCHILY.xattr.{key}"] = text
    info.pax_headers.update(pax or {})
    return info


def file(path: str, data: bytes = b"", *, mode: int = 0o644, **meta: object) -> Entry:
    info = _info(path, tarfile.REGTYPE, mode=mode, **meta)  # type: ignore[arg-type]
    info.size = len(data)
    return Entry(info, data=data)


def zeros(path: str, size: int, *, mode: int = 0o644, **meta: object) -> Entry:
    info = _info(path, tarfile.REGTYPE, mode=mode, **meta)  # type: ignore[arg-type]
    info.size = size
    return Entry(info, zero_bytes=size)


def directory(path: str, *, mode: int = 0o755, **meta: object) -> Entry:
    return Entry(_info(path, tarfile.DIRTYPE, mode=mode, **meta))  # type: ignore[arg-type]


def symlink(path: str, target: str, *, mode: int = 0o777, **meta: object) -> Entry:
    info = _info(path, tarfile.SYMTYPE, mode=mode, **meta)  # type: ignore[arg-type]
    info.linkname = target
    return Entry(info)


def hardlink(path: str, target: str, *, mode: int = 0o644, **meta: object) -> Entry:
    info = _info(path, tarfile.LNKTYPE, mode=mode, **meta)  # type: ignore[arg-type]
    info.linkname = target
    return Entry(info)


def fifo(path: str, *, mode: int = 0o644, **meta: object) -> Entry:
    return Entry(_info(path, tarfile.FIFOTYPE, mode=mode, **meta))  # type: ignore[arg-type]


def chardev(path: str, major: int, minor: int, *, mode: int = 0o666, **meta: object) -> Entry:
    info = _info(path, tarfile.CHRTYPE, mode=mode, **meta)  # type: ignore[arg-type]
    info.devmajor, info.devminor = major, minor
    return Entry(info)


def blockdev(path: str, major: int, minor: int, *, mode: int = 0o660, **meta: object) -> Entry:
    info = _info(path, tarfile.BLKTYPE, mode=mode, **meta)  # type: ignore[arg-type]
    info.devmajor, info.devminor = major, minor
    return Entry(info)


def whiteout(path: str) -> Entry:
    """The whiteout deleting `path` from lower layers: ``dir/.wh.name``."""
    parent, _, name = path.rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(directory_path: str) -> Entry:
    """The marker hiding every lower-layer child of `directory_path`: ``dir/.wh..wh..opq``."""
    return file(f"{directory_path.rstrip('/')}/.wh..wh..opq" if directory_path.strip("/") else ".wh..wh..opq")


def raw(data: bytes) -> Entry:
    """Bytes written verbatim (a hand-made header, garbage, a truncated block)."""
    return Entry(None, raw=data)


def write_layer_tar(path: Path, entries: Iterable[Entry], *, format: int = tarfile.PAX_FORMAT,
                    end_blocks: bool = True) -> Path:
    with open(path, "wb") as out:
        for entry in entries:
            if entry.info is None:
                out.write(entry.raw)
                continue
            out.write(entry.info.tobuf(format, "utf-8", "surrogateescape"))
            size = entry.info.size
            if entry.zero_bytes:
                out.seek(entry.zero_bytes, os.SEEK_CUR)
            else:
                out.write(entry.data)
            if size % tarfile.BLOCKSIZE:
                out.write(bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))
        if end_blocks:
            out.write(bytes(2 * tarfile.BLOCKSIZE))
        out.truncate()
    return path


def make_layer(tmp_path: Path, entries: Iterable[Entry], *, name: str | None = None,
               format: int = tarfile.PAX_FORMAT, end_blocks: bool = True) -> LayerBlob:
    """Write a layer tar into `tmp_path` and describe it as the blob cache would."""
    path = tmp_path / (name or f"layer-{len(list(tmp_path.glob('layer-*.tar')))}.tar")
    write_layer_tar(path, entries, format=format, end_blocks=end_blocks)
    digest = "sha256:" + file_sha256(path)
    return LayerBlob(digest=digest, diff_id=digest, media_type=TAR_MEDIA_TYPE, size=path.stat().st_size,
                     tar_path=path)


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def compress(data: bytes, codec: Literal["gzip", "zstd", "none"]) -> bytes:
    """A layer blob as a registry would store it (gzip with mtime 0, so it is reproducible)."""
    if codec == "gzip":
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as stream:
            stream.write(data)
        return buffer.getvalue()
    if codec == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def compressed_layer(layer: LayerBlob, codec: Literal["gzip", "zstd", "none"]) -> tuple[bytes, str]:
    """The compressed blob of `layer` and its ``sha256:`` digest (`layer.diff_id` stays the tar's)."""
    blob = compress(layer.tar_path.read_bytes(), codec)
    return blob, "sha256:" + hashlib.sha256(blob).hexdigest()


def tiny_layer_tar() -> bytes:
    """A one-file layer tar, for images pushed to a test registry."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return buffer.getvalue()
