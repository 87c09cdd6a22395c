"""Turn SIGTERM (a CI timeout, a cancelled job) into an exception, so cleanup runs as for Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from ..interrupts import Interrupted
from ..progress import PIPELINE, Progress, Task


class Cancelled(Exception):
    """Raised inside a worker once the run is being abandoned."""


@contextmanager
def interrupts_raise() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class CancellableProgress:
    """Workers check the flag on every progress step, so an abandoned export stops within a chunk."""

    def __init__(self, inner: Progress, cancelled: threading.Event) -> None:
        self.inner, self.cancelled = inner, cancelled

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        if self.cancelled.is_set():
            raise Cancelled()
        with self.inner.task(description, total) as task:
            yield _CancellableTask(task, self.cancelled)

    @contextmanager
    def row(self, name: str, stage: str, *, done: str | None = None, unchanged: str = "cached") -> Iterator[Progress]:
        with self.inner.row(name, stage, done=done, unchanged=unchanged) as row:
            yield CancellableProgress(row, self.cancelled)

    def expect(self, count: int | None = None, stages: Sequence[str] = PIPELINE, *,
               stages_of: Mapping[str, Sequence[str]] | None = None) -> None:
        self.inner.expect(count, stages, stages_of=stages_of)

    def log(self, line: str) -> None:
        self.inner.log(line)


class _CancellableTask:
    def __init__(self, inner: Task, cancelled: threading.Event) -> None:
        self.inner, self.cancelled = inner, cancelled

    def advance(self, amount: int) -> None:
        if self.cancelled.is_set():
            raise Cancelled()
        self.inner.advance(amount)

    def skip(self, amount: int) -> None:
        self.inner.skip(amount)

    def set_total(self, total: int | None) -> None:
        self.inner.set_total(total)
