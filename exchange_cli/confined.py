"""Reading a file inside a directory tree without ever following a link out of it, and never more of it
than a limit.

A contributor controls what a checkout of the exchange contains, symbolic links included: a spec or a
manifest that is a link to ``~/.docker/config.json`` would otherwise be read on the CI machine and quoted
in its logs. Each path component is opened relative to the one before with O_NOFOLLOW, so no link is
followed, not even one swapped in between a check and the open. A file over the caller's size limit is
refused from its size, before anything is read, so a committed multi-gigabyte file never fills memory.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from .bounded import read_at_most

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted where a file is expected must not hang the run; it is refused below.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotConfined(Exception):
    """The path is, or passes through, a link or something other than a regular file; nothing was read."""

    def __init__(self, place: str, reason: str) -> None:
        super().__init__(f"{place} {reason}")
        self.place = place
        self.reason = reason


class TooLarge(NotConfined):
    """The file is larger than the caller reads; nothing was read."""

    def __init__(self, place: str, size: int, limit: int) -> None:
        super().__init__(place, f"is {size:,} bytes, over the limit of {limit:,} bytes")
        self.size = size
        self.limit = limit


def read_below(root: Path, relative: str, *, limit: int | None = None) -> bytes:
    """The bytes of the regular file at `relative` (POSIX, no '.' or '..') below `root`.

    NotConfined when a component is a link or the file is not regular, TooLarge when it holds more than
    `limit` bytes; FileNotFoundError and other OSErrors as the system reports them.
    """
    parts = PurePosixPath(relative).parts
    if not parts or any(part in (".", "..", "/") for part in parts):
        raise ValueError(f"{relative!r} is not a plain relative path")
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, part in enumerate(parts[:-1]):
            parent, directory = directory, -1
            try:
                directory = _open(parent, part, _DIRECTORY_FLAGS, "/".join(parts[:depth + 1]))
            finally:
                os.close(parent)
        descriptor = _open(directory, parts[-1], _FILE_FLAGS, relative)
    finally:
        if directory >= 0:
            os.close(directory)
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise NotConfined(relative, "is not a regular file")
        if limit is None:
            return stream.read()
        if status.st_size > limit:
            raise TooLarge(relative, status.st_size, limit)
        content = read_at_most(stream, limit)  # a file that grew since fstat is still read no further
        if content is None:
            raise TooLarge(relative, os.fstat(stream.fileno()).st_size, limit)
        return content


def entries_below(top: Path, *, hidden: bool = False) -> list[Path]:
    """The files below `top`, and the links as they are: a link is never followed (it could lead anywhere
    on the machine, or loop), so reading it reports it instead. Hidden files and folders are left out
    unless `hidden`. `top` itself must not be a link (callers report that)."""
    found: list[Path] = []
    for current, directories, files in os.walk(top):  # does not descend into linked directories
        here = Path(current)
        links = [name for name in directories if (here / name).is_symlink()]
        directories[:] = sorted(name for name in directories
                                if (hidden or not name.startswith(".")) and name not in links)
        found.extend(here / name for name in [*files, *links] if hidden or not name.startswith("."))
    return sorted(found)


def _open(directory: int, name: str, flags: int, place: str) -> int:
    try:
        return os.open(name, flags, dir_fd=directory)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
            mode = os.lstat(name, dir_fd=directory).st_mode
            if stat.S_ISLNK(mode):
                raise NotConfined(place, "is a symbolic link") from None
            if not stat.S_ISDIR(mode) and flags & os.O_DIRECTORY:
                raise NotConfined(place, "is not a directory") from None
            if not stat.S_ISREG(mode):
                raise NotConfined(place, "is not a regular file") from None
        raise


def read_small_file(path: Path, *, limit: int) -> bytes:
    """A file the user named (a key, a token): a regular file of at most `limit` bytes, refused from its
    type or size before anything is read, so `/dev/zero`, a FIFO or a 300 MB file cannot fill memory or
    hang. NotConfined/TooLarge (with the path as given) or the OSError the system raises."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise NotConfined(str(path), "is not a regular file")
        if status.st_size > limit:
            raise TooLarge(str(path), status.st_size, limit)
        content = read_at_most(stream, limit)
        if content is None:
            raise TooLarge(str(path), os.fstat(stream.fileno()).st_size, limit)
        return content
