"""Stream a rootfs to disk, hashing it as it arrives; only a file with the expected hash is kept."""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

from ..bounded import Readable
from ..durable import new_file_mode
from ..errors import ExchangeError, describe_os_error, writing
from ..lockedtemp import locked_temp_file, remove_abandoned
from ..remote import DownloadError

BLOCK_SIZE = 1024 * 1024
PART_SUFFIX = ".part"
HASH_ALGORITHMS = ("sha384", "sha256")


class HashMismatch(ExchangeError):
    pass


def parse_hash(text: str, *, what: str) -> tuple[str, str]:
    algorithm, _, hex_digest = text.partition(":")
    if algorithm not in HASH_ALGORITHMS or not hex_digest:
        raise ExchangeError(f"{what}: rootfs-hash {text!r} is not sha384:<hex> or sha256:<hex>")
    return algorithm, hex_digest.lower()


def _read(stream: Readable, source: str) -> bytes:
    try:
        return stream.read(BLOCK_SIZE)
    except OSError as error:
        raise DownloadError(f"cannot download {source}: {describe_os_error(error)}") from None


def save_verified(stream: Readable, destination: Path, *, expected_hash: str, expected_size: int | None,
                  source: str) -> None:
    """Write `stream` to `destination` via a temp file beside it; a mismatch leaves nothing behind."""
    algorithm, expected = parse_hash(expected_hash, what=source)
    digest = hashlib.new(algorithm)
    size = 0
    with writing(destination, "the download"):
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Earlier downloads that died (killed, powered off) left their .part; a live one holds its lock.
        remove_abandoned(destination.parent, f".{glob.escape(destination.name)}.*{PART_SUFFIX}")
        descriptor, temp_path = locked_temp_file(destination.parent, f".{destination.name}.", PART_SUFFIX)
        temp_name = str(temp_path)
    try:
        # A full disk may only show when the file is closed: the whole write is inside `writing`, and
        # read errors are turned into the source's error first, so they are not blamed on the disk.
        with writing(destination, "the download"), os.fdopen(descriptor, "wb") as out:
            while block := _read(stream, source):
                digest.update(block)
                size += len(block)
                out.write(block)
        actual = digest.hexdigest()
        if actual != expected:
            raise HashMismatch(f"{source}: downloaded {size} bytes hash to {algorithm}:{actual}, but the manifest "
                               f"says {algorithm}:{expected}; the artifact was tampered with or corrupted, "
                               "nothing was kept")
        if expected_size is not None and size != expected_size:
            raise HashMismatch(f"{source}: downloaded {size} bytes, the manifest says {expected_size}")
        with writing(destination, "the download"):
            os.chmod(temp_name, new_file_mode())  # the lock file's 0600 would hide the download from other users
            os.replace(temp_name, destination)
    finally:
        Path(temp_name).unlink(missing_ok=True)
