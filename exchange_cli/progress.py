"""Progress for long work: one live display on a terminal, a line per spec; plain log lines otherwise.

Feeders (image sources, the export, uploads) open tasks on the Progress they are given and advance
them by the bytes they move; `skip` says bytes are already at hand (a cache hit: less work, not a
faster transfer) and `set_total` gives the size once it is known. A caller that works on something
with a name opens a *row*: `with progress.row("acme/hello@1.0", "fetch") as row:` and hands `row` to
the feeders, so every task they open is summed on that one line, labelled with the stage. A stage in
which nothing moved ends as "cached" (or the word the caller gives). Sizes are IEC units everywhere.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ContextManager, Iterator, Protocol, Self, TextIO

from .logs import show_lines_with
from .quoting import printable
from .terminal import console as make_console


class Task(Protocol):
    def advance(self, amount: int) -> None: ...

    def skip(self, amount: int) -> None: ...

    def set_total(self, total: int | None) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None = None) -> ContextManager[Task]: ...

    def row(self, name: str, stage: str, *, done: str | None = None,
            unchanged: str = "cached") -> ContextManager["Progress"]: ...

    def log(self, line: str) -> None: ...


class NullTask:
    def advance(self, amount: int) -> None:
        pass

    def skip(self, amount: int) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


class _Output:
    """What every display shares: log lines go to stderr, and it ends with the `with` block it opens."""

    def log(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NullProgress(_Output):
    """No output (--quiet, library callers)."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        yield NullTask()

    @contextmanager
    def row(self, name: str, stage: str, *, done: str | None = None, unchanged: str = "cached") -> Iterator[Progress]:
        yield self


@dataclass
class _Part:
    """One feeder task inside a row's stage."""

    total: int | None
    done: int = 0


@dataclass
class Row:
    """One line: a name, its current stage, and the tasks feeding that stage, summed."""

    name: str
    stage: str = ""
    done_label: str = ""  # shown once the stage has moved its bytes
    parts: list[_Part] = field(default_factory=list)
    moved: int = 0  # bytes really transferred in this stage (skipped bytes are not)
    skipped: int = 0  # bytes a feeder found already at hand
    first_move: float | None = None
    last_move: float | None = None
    outcome: str | None = None  # None while the stage runs; then "done", "failed" or the unchanged word

    def begin(self, stage: str, done_label: str) -> None:
        self.stage, self.done_label, self.parts, self.outcome = stage, done_label, [], None
        self.moved, self.skipped, self.first_move, self.last_move = 0, 0, None, None

    @property
    def completed(self) -> int:
        return sum(part.done for part in self.parts)

    @property
    def total(self) -> int | None:
        if not self.parts or any(part.total is None for part in self.parts):
            return None
        return sum(part.total or 0 for part in self.parts)

    @property
    def label(self) -> str:
        if self.outcome == "done":
            return self.done_label
        return self.outcome or self.stage

    def rate(self, now: float) -> float | None:
        """Bytes per second over the stage so far; None until bytes have moved for a moment."""
        if self.first_move is None:
            return None
        end = now if self.outcome is None else (self.last_move or now)
        elapsed = end - self.first_move
        return self.moved / elapsed if elapsed > 0.05 else None

    def advance(self, part: _Part, amount: int) -> None:
        now = time.monotonic()
        part.done += amount
        self.moved += amount
        self.first_move = self.first_move if self.first_move is not None else now
        self.last_move = now

    def finish(self, ok: bool, unchanged: str) -> None:
        if not ok:
            self.outcome = "failed"
            return
        # Nothing moved although there was work: it was already done (no feeder needed to start, bytes
        # were skipped, or a feeder found its result in place). A stage with nothing to move is done.
        expected = not self.parts or self.skipped > 0 or any(part.total for part in self.parts)
        for part in self.parts:  # a feeder that ends normally has done all its work
            part.total = part.done
        self.outcome = "done" if self.moved or not expected else unchanged


class _RowTask:
    def __init__(self, row: Row, part: _Part, lock: threading.Lock) -> None:
        self.row, self.part, self.lock = row, part, lock

    def advance(self, amount: int) -> None:
        with self.lock:
            self.row.advance(self.part, amount)

    def skip(self, amount: int) -> None:
        with self.lock:
            self.row.skipped += amount
            if self.part.total is not None:
                self.part.total = max(self.part.done, self.part.total - amount)

    def set_total(self, total: int | None) -> None:
        with self.lock:
            self.part.total = total


class _RowProgress:
    """A Progress whose tasks all feed one row's current stage."""

    def __init__(self, owner: "_Display", row: Row) -> None:
        self.owner, self.current = owner, row

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        with self.owner.lock:
            part = _Part(total)
            self.current.parts.append(part)
        yield _RowTask(self.current, part, self.owner.lock)

    def row(self, name: str, stage: str, *, done: str | None = None, unchanged: str = "cached") -> ContextManager[Progress]:
        return self.owner.row(name, stage, done=done, unchanged=unchanged)

    def log(self, line: str) -> None:
        self.owner.log(line)


class _Display(_Output):
    """What the terminal and the log renderers share: rows by name, one lock, stage bookkeeping."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, Row] = {}

    @contextmanager
    def row(self, name: str, stage: str, *, done: str | None = None, unchanged: str = "cached") -> Iterator[Progress]:
        with self.lock:
            row = self.rows.get(name)
            new = row is None
            if row is None:
                row = self.rows[name] = Row(printable(name))  # shown on a terminal: a name's controls escaped
            row.begin(stage, done or stage)
        if new:
            self.added(row)  # outside the lock: a renderer drawing the rows takes it
        ok = False
        try:
            yield _RowProgress(self, row)
            ok = True
        finally:
            with self.lock:
                row.finish(ok, unchanged)
            self.finished(row)

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        """A task outside any row gets a row of its own, named by its description."""
        with self.row(description, "") as row, row.task(description, total) as task:
            yield task

    def added(self, row: Row) -> None:
        pass

    def finished(self, row: Row) -> None:
        pass


class LogProgress(_Display):
    """For CI logs and other non-terminals: a line per row every `interval` seconds, and one per stage end."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 10.0) -> None:
        super().__init__()
        self.stream, self.interval = stream, interval
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def added(self, row: Row) -> None:
        if self._ticker is None and self.interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="progress-log", daemon=True)
            self._ticker.start()

    def finished(self, row: Row) -> None:
        with self.lock:
            if row.outcome == "failed" and not row.moved:
                return  # the error says it all
            line = describe_row(row, time.monotonic())
        self._print(line)

    def log(self, line: str) -> None:
        self._print(line)

    def close(self) -> None:
        self._stop.set()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self.lock:
                now = time.monotonic()
                lines = [describe_row(row, now) for row in self.rows.values() if row.outcome is None and row.moved]
            for line in lines:
                self._print(line)

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def describe_row(row: Row, now: float) -> str:
    """`acme/x@1.0 write: 3.2 MiB of 10.0 MiB (1.5 MiB/s)`, `acme/x@1.0 fetch: cached`."""
    head = f"{row.name} {row.label}".strip() + ":"
    if row.outcome not in (None, "done"):
        return head[:-1] + (f" after {format_bytes(row.completed)}" if row.outcome == "failed" else "")
    total = row.total
    of_total = f" of {format_bytes(total)}" if total is not None else ""
    rate = row.rate(now)
    speed = f" ({format_bytes(rate)}/s)" if rate is not None else ""
    return f"{head} {format_bytes(row.completed)}{of_total}{speed}"


@dataclass(frozen=True)
class RowLayout:
    """Column widths that add up to at most the console's width, so a row never wraps: the name gets
    what the bar does not need; on narrow consoles the rate, then the bar, are left out."""

    name: int
    bar: int  # 0: no bar
    rate: bool
    bytes: bool = True

    STAGE = 9  # "in bucket"
    BYTES = 17  # "1023.9/1023.9 MiB"
    RATE = 12  # "1023.9 MiB/s"
    MIN_NAME, MIN_BAR, MAX_NAME = 16, 10, 40

    @classmethod
    def fit(cls, width: int) -> "RowLayout":
        fixed = cls.STAGE + 1 + cls.BYTES + 1
        for bar, rate in ((cls.MIN_BAR, True), (cls.MIN_BAR, False), (0, False)):
            used = fixed + (bar + 1 if bar else 0) + (cls.RATE + 1 if rate else 0)
            if width - used >= cls.MIN_NAME:
                name = min(cls.MAX_NAME, width - used)
                return cls(name, bar + (width - used - name) if bar else 0, rate)
        if width - fixed >= cls.MIN_NAME // 2:
            return cls(width - fixed, 0, False)
        return cls(max(1, width - cls.STAGE - 1), 0, False, bytes=False)

    @property
    def width(self) -> int:
        return (self.name + 1 + self.STAGE + (self.BYTES + 1 if self.bytes else 0) + (self.bar + 1 if self.bar else 0)
                + (self.RATE + 1 if self.rate else 0))


class RichProgress(_Display):
    """One live display for the whole command: a line per row that never wraps (names are shortened
    to fit the console's width), redrawn in place, left on screen once at close()."""

    def __init__(self, console=None) -> None:  # noqa: ANN001 - a rich Console
        super().__init__()
        from rich.progress import Progress as RichBar

        self.console = console or make_console(sys.stderr)
        self.layout = RowLayout.fit(self.console.width - 1)  # never the last column: some terminals wrap there
        self._bar = RichBar(*_columns(self, self.layout), console=self.console, transient=False, expand=False,
                            refresh_per_second=8)
        self._started = False
        self._start_lock = threading.RLock()

    def added(self, row: Row) -> None:
        if not self._started:
            # Lines go through the display before its first frame is drawn: a line another thread
            # wrote straight to the terminal meanwhile would leave that frame behind. Not under
            # _start_lock: a line being logged holds the log handler's lock and waits for that one.
            show_lines_with(self.log)
        with self._start_lock:
            if not self._started:
                self._bar.start()
                self._started = True
            self._bar.add_task(row.name, row=row)

    def finished(self, row: Row) -> None:
        self._bar.refresh()

    def log(self, line: str) -> None:
        """Above the live rows, which are redrawn below it."""
        with self._start_lock:  # never while the display starts: that frame would be left behind
            # Under the live display's own lock: rich takes it only to choose the cursor movement, then
            # draws outside it, so a refresh between the two would leave a frame behind.
            with self._bar.live._lock:
                # Wrapped by rich itself (not soft-wrapped by the terminal), so it knows how many lines to skip.
                self.console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        with self._start_lock:
            started, self._started = self._started, False
            if started:
                self._bar.stop()
        if started:
            show_lines_with(None)  # once the last frame is drawn; lines go straight to the terminal again


def _columns(display: RichProgress, layout: RowLayout) -> list:
    from rich.progress import ProgressBar, ProgressColumn
    from rich.table import Column
    from rich.text import Text

    def row_of(task) -> Row:  # noqa: ANN001 - a rich Task
        return task.fields["row"]

    class Name(ProgressColumn):
        def render(self, task) -> Text:  # noqa: ANN001
            return Text(shorten(row_of(task).name, layout.name))

    class Stage(ProgressColumn):
        def render(self, task) -> Text:  # noqa: ANN001
            row = row_of(task)
            style = {"failed": "red", None: ""}.get(row.outcome, "green")
            return Text(row.label[:RowLayout.STAGE], style=style)

    class Bar(ProgressColumn):
        def render(self, task) -> ProgressBar:  # noqa: ANN001
            row = row_of(task)
            with display.lock:
                total, completed = row.total, row.completed
            if row.outcome is not None and row.outcome != "failed" and not total:
                total, completed = 1, 1  # nothing (left) to move: complete
            failed = row.outcome == "failed"
            return ProgressBar(total=total or None, completed=completed, width=layout.bar,
                               pulse=not total and row.outcome is None, animation_time=task.get_time(),
                               complete_style="red" if failed else "bar.complete",
                               finished_style="red" if failed else "bar.finished")

    class Bytes(ProgressColumn):
        def render(self, task) -> Text:  # noqa: ANN001
            row = row_of(task)
            with display.lock:
                total, completed, outcome = row.total, row.completed, row.outcome
            if not row.parts or outcome not in (None, "done", "failed"):
                return Text("")
            return Text(format_fraction(completed, total), justify="right")

    class Rate(ProgressColumn):
        def render(self, task) -> Text:  # noqa: ANN001
            row = row_of(task)
            with display.lock:
                rate = row.rate(time.monotonic())
            return Text(f"{format_bytes(rate)}/s" if rate is not None else "", justify="right")

    def fixed(width: int) -> Column:
        return Column(width=width, no_wrap=True, overflow="crop")

    columns = [Name(table_column=fixed(layout.name)), Stage(table_column=fixed(RowLayout.STAGE))]
    if layout.bar:
        columns.append(Bar(table_column=fixed(layout.bar)))
    if layout.bytes:
        columns.append(Bytes(table_column=fixed(RowLayout.BYTES)))
    if layout.rate:
        columns.append(Rate(table_column=fixed(RowLayout.RATE)))
    return columns


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle where names differ least."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def progress_for(stream: TextIO = sys.stderr, quiet: bool = False) -> NullProgress | LogProgress | RichProgress:
    """The display for a command; use it as a context manager, so the live display ends with the command."""
    if quiet:
        return NullProgress()
    if stream.isatty():
        return RichProgress(make_console(stream))
    return LogProgress(stream)


def format_fraction(done: int, total: int | None) -> str:
    """`12.5/419.5 MiB` in the total's unit (the done part alone when the total is unknown)."""
    if total is None:
        return format_bytes(done)
    value, unit = format_bytes(total).split(" ")
    return f"{value if done >= total else _in_unit(done, unit)}/{value} {unit}"


def _in_unit(count: float, unit: str) -> str:
    power = ("B", "KiB", "MiB", "GiB", "TiB").index(unit)
    return f"{count:.0f}" if power == 0 else f"{count / 1024 ** power:.1f}"


def format_bytes(count: float | None) -> str:
    """IEC units: 512 B, 1.5 KiB, 419.5 MiB, 2.0 GiB."""
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
