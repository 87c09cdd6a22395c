"""Progress for long work: a rich bar on a terminal, periodic plain log lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Protocol, TextIO


class Task(Protocol):
    def advance(self, amount: int) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None = None) -> "contextmanager[Task]": ...


class _NullTask:
    def advance(self, amount: int) -> None:
        pass


class NullProgress:
    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        yield _NullTask()


class _LogTask:
    def __init__(self, stream: TextIO, description: str, total: int | None, interval: float) -> None:
        self.stream, self.description, self.total, self.interval = stream, description, total, interval
        self.done = 0
        self.started = self.last = time.monotonic()

    def advance(self, amount: int) -> None:
        self.done += amount
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.report(now)

    def report(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        of_total = f" of {format_bytes(self.total)}" if self.total else ""
        print(f"{self.description}: {format_bytes(self.done)}{of_total} ({format_bytes(rate)}/s)", file=self.stream, flush=True)


class LogProgress:
    """For CI logs: one line per interval, and one at the end of each task."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 10.0) -> None:
        self.stream, self.interval = stream, interval

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        task = _LogTask(self.stream, description, total, self.interval)
        yield task
        task.report(time.monotonic())


class RichProgress:
    """One live display while any task runs; finished tasks are printed once, then dropped, so the
    next task does not draw them again. Thread-safe: parallel exports share it."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress as RichBar, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self._bar = RichBar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), transient=False)
        self._lock = threading.Lock()
        self._active = 0

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        with self._lock:
            if self._active == 0:
                self._bar.start()
            self._active += 1
            task_id = self._bar.add_task(description, total=total)
        try:
            yield _RichTask(self._bar, task_id)
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._bar.stop()
                    for finished in list(self._bar.task_ids):
                        self._bar.remove_task(finished)


class _RichTask:
    def __init__(self, bar, task_id) -> None:  # noqa: ANN001 - rich types
        self.bar, self.task_id = bar, task_id

    def advance(self, amount: int) -> None:
        self.bar.advance(self.task_id, amount)


def progress_for(stream: TextIO = sys.stderr, quiet: bool = False) -> Progress:
    if quiet:
        return NullProgress()
    return RichProgress() if stream.isatty() else LogProgress(stream)


def format_bytes(count: float | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
