"""Writes that survive a crash whole or not at all: a temporary file beside the target, fsynced, renamed
over it; the directory fsynced so that the rename itself is not lost."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: str | bytes, *, prefix: str | None = None) -> None:
    """A reader sees the old file or the whole new one. `prefix` names the temporary file, for whoever
    sweeps the leftovers of a writer that died (default: `.<name>.`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = data.encode("utf-8") if isinstance(data, str) else data
    descriptor, temp_name = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
