"""Temporary files and directories that say whether their writer is alive: the writer holds an flock on
each while it works, the kernel drops it when the writer dies (kill -9 included), so the next run
removes exactly the leftovers nobody holds. Used by the layer cache, `fetch` (`.part` files) and
`fetch --extract` (its staging directory).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path


def locked_temp_file(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new file in `directory`, open for writing and locked by this process until the fd is closed."""
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd, Path(name)
        os.close(fd)  # a sweeper took it between mkstemp and flock: take another


def locked_temp_dir(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new directory in `directory`, locked by this process (an fd on it) until the fd is closed."""
    while True:
        path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=directory))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # a sweeper took it between mkdtemp and open: take another
        fcntl.flock(fd, fcntl.LOCK_EX)
        if path.is_dir():
            return fd, path
        os.close(fd)


def remove_abandoned(directory: Path, pattern: str) -> list[Path]:
    """Delete the entries of `directory` matching `pattern` that no live process holds locked."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for path in sorted(directory.glob(pattern)):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.lstat(path)):  # not renamed into place meanwhile
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
        except OSError:  # locked by its live writer, or already gone
            continue
        finally:
            os.close(fd)
    return removed
