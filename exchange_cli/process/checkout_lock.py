"""One `exchange process` at a time in a work tree: a second one stops at once with a clear message.

An advisory lock on a file in the git directory, which the kernel releases when the holder exits,
even by SIGKILL: nothing to clean up after a killed run.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..git import AnotherProcessRunning
from ..repository import Exchange

LOCK_FILE = "exchange-process.lock"


@contextmanager
def exclusive_checkout(exchange: Exchange) -> Iterator[None]:
    path = Path(exchange.repo.git_dir) / LOCK_FILE
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise AnotherProcessRunning(f"{exchange.root}: another exchange process is running in this work tree "
                                        f"(pid {holder}); wait for it to finish") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
