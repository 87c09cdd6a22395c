"""Errors the CLI turns into a message and an exit code instead of a traceback."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class ExchangeError(Exception):
    """A failure the user can act on; the message is shown as is."""

    exit_code = 1


class UsageError(ExchangeError):
    """Bad options, not a git repository, an unknown path: exit 2."""

    exit_code = 2


class OutputError(ExchangeError):
    """A file the tool writes cannot be written (disk full, read-only, no permission): exit 2.

    The message names the path and the system's reason, e.g. ``cannot write /x/out.tgz: No space
    left on device``; whatever was half-written there has already been removed.
    """

    exit_code = 2

    @classmethod
    def writing(cls, path: object, error: OSError) -> "OutputError":
        return cls(f"cannot write {path}: {error.strerror or error}")


@contextmanager
def writing(path: object) -> Iterator[None]:
    """OSErrors raised inside (disk full, quota, read-only, no permission) become an OutputError naming `path`."""
    try:
        yield
    except OSError as error:
        raise OutputError.writing(path, error) from error
