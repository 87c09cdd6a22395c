"""Writes that survive a crash whole or not at all: a temporary file beside the target, fsynced, renamed
over it; the directory fsynced so that the rename itself is not lost."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: str | bytes, *, prefix: str | None = None, make_parents: bool = True) -> None:
    """A reader sees the old file or the whole new one, with the mode a plain write would give it
    (`new_file_mode`). `prefix` names the temporary file, for whoever sweeps the leftovers of a writer that
    died (default: `.<name>.`); `make_parents=False`: a missing directory is an error (FileNotFoundError)."""
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    content = data.encode("utf-8") if isinstance(data, str) else data
    descriptor, temp_name = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, new_file_mode())
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def fsync_directory(directory: Path) -> None:
    """Make a rename or link in `directory` durable: without it a crash can lose the directory entry."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@functools.cache
def new_file_mode() -> int:
    """The mode `open()` gives a new file (0666 less the umask): what a file the user asked for gets, where
    mkstemp's 0600 would hide a manifest, a download or a report from the other users who read it. The
    umask is read from /proc (os.umask can only be read by setting it, which other threads would see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            umask = next((int(line.split()[1], 8) for line in status if line.startswith("Umask:")), 0o022)
    except (OSError, ValueError, IndexError):
        umask = 0o022
    return 0o666 & ~umask
