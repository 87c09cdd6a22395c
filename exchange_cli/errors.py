"""Errors the CLI turns into a message and an exit code instead of a traceback."""

from __future__ import annotations

import enum
import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


class Category(enum.Enum):
    """What kind of failure an error is. The exit status follows from the category alone, in one table
    (`EXIT_STATUS`), so no error class and no command picks a number of its own."""

    INPUT = "input"  # a spec, an invocation, an image, a hash, a signature is wrong
    USAGE = "usage"  # options, a name the exchange does not hold, not a repository
    ENVIRONMENT = "environment"  # a remote, a bucket, a daemon, a disk, credentials, a key file failed us
    DEFECT = "defect"  # a bug of ours: an unexpected exception


# docs/commands.md, "Exit status" (130 and 143, interrupted by a signal, are 128 + its number).
EXIT_STATUS = {Category.INPUT: 1, Category.USAGE: 2, Category.ENVIRONMENT: 2, Category.DEFECT: 3}


def findings_status(ok: bool) -> int:
    """The exit status of a command that reported its findings itself (validate, verify, ...)."""
    return 0 if ok else EXIT_STATUS[Category.INPUT]


class ExchangeError(Exception):
    """A failure the user can act on; the message is shown as is."""

    category: ClassVar[Category] = Category.INPUT

    @property
    def exit_code(self) -> int:
        return EXIT_STATUS[self.category]


class UsageError(ExchangeError):
    """Bad options, not a git repository, an unknown path: exit 2."""

    category = Category.USAGE


class EnvironmentFailure(ExchangeError):
    """Something outside the input failed: a remote, a bucket, a daemon, a disk: exit 2."""

    category = Category.ENVIRONMENT


class CredentialsError(EnvironmentFailure):
    """A credential setting is unusable (a registry's Docker config or helper, the bucket's service account):
    the environment to fix, exit 2. Messages name the setting and the problem, never the secret."""


class OutputError(EnvironmentFailure):
    """A file the tool writes cannot be written (disk full, read-only, no permission): exit 2.

    The message names the path and the system's reason, e.g. ``cannot write /x/out.tgz: No space
    left on device``; whatever was half-written there has already been removed.
    """

    @classmethod
    def writing(cls, path: object, error: OSError, what: str | None = None) -> OutputError:
        target = f"{what} to {path}" if what else str(path)
        return cls(f"cannot write {target}: {describe_os_error(error, known_path=Path(str(path)))}")


def redact(text: str) -> str:
    """URLs may carry tokens (https://x-access-token:SECRET@host/...): never print them."""
    return _CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", text)


def describe_os_error(error: OSError, *, known_path: Path | None = None) -> str:
    """``<path>: <reason>`` as the system says it, on one line, credentials in URLs redacted. The path is
    left out when it is `known_path`, which the caller's message already names."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno == errno.EEXIST and error.filename is not None and Path(error.filename).is_file():
        reason = "is a file, not a directory"  # mkdir(parents=True) met a file on the way
    paths = [str(name) for name in (error.filename, error.filename2) if name is not None]
    if known_path is not None and paths == [str(known_path)]:
        paths = []
    return redact(" ".join((f"{' -> '.join(paths)}: {reason}" if paths else reason).split()))


@contextmanager
def writing(path: object, what: str | None = None) -> Iterator[None]:
    """OSErrors raised inside (disk full, quota, read-only, no permission) become an OutputError naming
    `path` (and `what` was being written, for outputs the user named: ``-o``, ``--csv``, ``--dir``)."""
    try:
        yield
    except OSError as error:
        raise OutputError.writing(path, error, what) from error
