"""The displays of progress (progress.py's protocol): one live display on a terminal, a line per spec;
plain log lines otherwise; nothing with -q (`progress_for` chooses).

A row's bar spans all the stages the row goes through (`expect` names them; by default those of
`exchange process`), each stage filling its share, so the bar never restarts and never goes back;
its byte counts are the current stage's. Above the rows, one overall line: rows done of N (`expect`
gives N; otherwise the rows opened so far), bytes moved, and an ETA once one can be estimated.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from .logs import show_lines_with
from .progress import PIPELINE, NullProgress, Output, Progress, Task, format_bytes, format_fraction
from .quoting import printable
from .terminal import console as make_console

Clock = Callable[[], float]


@dataclass
class _Part:
    """One feeder task inside a row's stage."""

    total: int | None
    done: int = 0


def stage_span(stage: str, stages: Sequence[str]) -> tuple[float, float, bool]:
    """The share of a row's bar that `stage` fills, as (start, end, is the last stage): equal shares, as
    the stages' sizes are unknown until each starts. A stage not in `stages` fills all that is left."""
    if stage not in stages:
        return 0.0, 1.0, True
    index = list(stages).index(stage)
    return index / len(stages), (index + 1) / len(stages), index == len(stages) - 1


@dataclass
class Row:
    """One line: a name, its current stage, and the tasks feeding that stage, summed; `fraction` is the
    row's whole work (all its stages) done, which only ever grows."""

    name: str
    counted: bool = True  # a spec's row, one of the overall line's N (a bare task's own row is not)
    stage: str = ""
    done_label: str = ""  # shown once the stage has moved its bytes
    parts: list[_Part] = field(default_factory=list)
    moved: int = 0  # bytes really transferred in this stage (skipped bytes are not)
    skipped: int = 0  # bytes a feeder found already at hand
    first_move: float | None = None
    last_move: float | None = None
    outcome: str | None = None  # None while the stage runs; then "done", "failed" or the unchanged word
    carried: int = 0  # bytes moved in the row's earlier stages
    span: tuple[float, float] = (0.0, 1.0)  # the part of the bar this stage fills
    last_stage: bool = True
    fraction: float = 0.0

    def begin(self, stage: str, done_label: str, stages: Sequence[str] = PIPELINE) -> None:
        self.carried += self.moved
        self.stage, self.done_label, self.parts, self.outcome = stage, done_label, [], None
        self.moved, self.skipped, self.first_move, self.last_move = 0, 0, None, None
        start, end, self.last_stage = stage_span(stage, stages)
        # Never behind what the bar shows: a stage entered again, or out of order, starts where the bar is.
        self.span = (max(start, self.fraction), max(end, self.fraction))
        self._settle()  # a stage the row never went through (done elsewhere) counts as done

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

    @property
    def complete(self) -> bool:
        """Through its last stage (a failed row is not)."""
        return self.last_stage and self.outcome not in (None, "failed")

    @property
    def moved_in_all_stages(self) -> int:
        return self.carried + self.moved

    def rate(self, now: float) -> float | None:
        """Bytes per second over the stage so far; None until bytes have moved for a moment."""
        if self.first_move is None:
            return None
        end = now if self.outcome is None else (self.last_move or now)
        elapsed = end - self.first_move
        return self.moved / elapsed if elapsed > 0.05 else None

    def add_part(self, total: int | None) -> _Part:
        part = _Part(total)
        self.parts.append(part)
        self._settle()
        return part

    def advance(self, part: _Part, amount: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        part.done += amount
        self.moved += amount
        self.first_move = self.first_move if self.first_move is not None else now
        self.last_move = now
        self._settle()

    def skip(self, part: _Part, amount: int) -> None:
        self.skipped += amount
        if part.total is not None:
            part.total = max(part.done, part.total - amount)
        self._settle()

    def set_total(self, part: _Part, total: int | None) -> None:
        part.total = total
        self._settle()

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
        self._settle()

    def _stage_fraction(self) -> float:
        if self.outcome is not None and self.outcome != "failed":
            return 1.0
        total = self.total
        return min(1.0, self.completed / total) if total else 0.0

    def _settle(self) -> None:
        # After every change, not when drawn: a total that grows (a feeder's next layer, a larger size
        # found) holds the bar where it is instead of pulling it back, whenever it is looked at.
        start, end = self.span
        self.fraction = max(self.fraction, start + (end - start) * self._stage_fraction())


@dataclass(frozen=True)
class Overall:
    """The line above the rows."""

    done: int  # rows through their last stage
    failed: int
    expected: int  # as told, else the rows opened so far
    moved: int  # bytes moved in all rows and stages
    eta: float | None  # seconds; None when it cannot be estimated


MIN_ELAPSED = 5.0  # seconds of work before an ETA: the first moments say little about the rest
MIN_FRACTION = 0.05


def estimate_eta(fraction: float, elapsed: float) -> float | None:
    """Seconds left if the rest goes as fast as the `fraction` done in `elapsed` seconds; None before
    there is enough to go on, and when nothing is left."""
    if elapsed < MIN_ELAPSED or not MIN_FRACTION <= fraction < 1.0:
        return None
    return elapsed * (1.0 - fraction) / fraction


class _RowTask:
    def __init__(self, row: Row, part: _Part, lock: threading.Lock, clock: Clock) -> None:
        self.row, self.part, self.lock, self.clock = row, part, lock, clock

    def advance(self, amount: int) -> None:
        with self.lock:
            self.row.advance(self.part, amount, self.clock())

    def skip(self, amount: int) -> None:
        with self.lock:
            self.row.skip(self.part, amount)

    def set_total(self, total: int | None) -> None:
        with self.lock:
            self.row.set_total(self.part, total)


class _RowProgress:
    """A Progress whose tasks all feed one row's current stage."""

    def __init__(self, owner: _Display, row: Row) -> None:
        self.owner, self.current = owner, row

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        with self.owner.lock:
            part = self.current.add_part(total)
        yield _RowTask(self.current, part, self.owner.lock, self.owner.clock)

    def row(self, name: str, stage: str, *, done: str | None = None,
            unchanged: str = "cached") -> AbstractContextManager[Progress]:
        return self.owner.row(name, stage, done=done, unchanged=unchanged)

    def expect(self, count: int | None = None, stages: Sequence[str] = PIPELINE, *,
               stages_of: Mapping[str, Sequence[str]] | None = None) -> None:
        self.owner.expect(count, stages, stages_of=stages_of)

    def log(self, line: str) -> None:
        self.owner.log(line)


class _Display(Output):
    """What the terminal and the log renderers share: rows by name, one lock, stage bookkeeping."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.rows: dict[str, Row] = {}
        self.expected: int | None = None
        self.stages: tuple[str, ...] = PIPELINE
        self.stages_of: dict[str, tuple[str, ...]] = {}
        self.started: float | None = None  # when the first counted row opened: what the ETA measures from

    def expect(self, count: int | None = None, stages: Sequence[str] = PIPELINE, *,
               stages_of: Mapping[str, Sequence[str]] | None = None) -> None:
        """`count` rows (None: count them as they open, and give no ETA, as more may come), each going
        through `stages` in order, or through those `stages_of` gives for its name."""
        with self.lock:
            self.expected, self.stages = count, tuple(stages)
            self.stages_of = {name: tuple(named) for name, named in (stages_of or {}).items()}

    def row(self, name: str, stage: str, *, done: str | None = None,
            unchanged: str = "cached") -> AbstractContextManager[Progress]:
        return self._row(name, stage, done or stage, unchanged, counted=True)

    @contextmanager
    def _row(self, name: str, stage: str, done: str, unchanged: str, *, counted: bool) -> Iterator[Progress]:
        with self.lock:
            row = self.rows.get(name)
            new = row is None
            if row is None:
                row = self.rows[name] = Row(printable(name), counted=counted)  # shown on a terminal: controls escaped
                if counted and self.started is None:
                    self.started = self.clock()
            row.begin(stage, done, self.stages_of.get(name, self.stages))
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
        """A task outside any row gets a row of its own, named by its description, not one of the N."""
        with self._row(description, "", "", "cached", counted=False) as row, row.task(description, total) as task:
            yield task

    def overall(self) -> Overall:
        with self.lock:
            rows = [row for row in self.rows.values() if row.counted]
            expected = max(self.expected or 0, len(rows))
            # A failed row has nothing left to do: its share counts as finished.
            fraction = sum(1.0 if row.outcome == "failed" else row.fraction for row in rows) / (expected or 1)
            eta = None
            if self.expected and self.started is not None:  # untold, more rows may come: no ETA
                eta = estimate_eta(fraction, self.clock() - self.started)
            return Overall(done=sum(row.complete for row in rows), failed=sum(row.outcome == "failed" for row in rows),
                           expected=expected, moved=sum(row.moved_in_all_stages for row in self.rows.values()), eta=eta)

    def added(self, row: Row) -> None:
        pass

    def finished(self, row: Row) -> None:
        pass


class LogProgress(_Display):
    """For CI logs and other non-terminals: every `interval` seconds the overall line and one per running
    row, and a line per stage end."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 10.0, *, clock: Clock = time.monotonic) -> None:
        super().__init__(clock)
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
            line = describe_row(row, self.clock())
        self._print(line)

    def log(self, line: str) -> None:
        self._print(line)

    def close(self) -> None:
        self._stop.set()

    def periodic_lines(self) -> list[str]:
        """What each tick prints: the overall line while rows are still to finish, then each running row."""
        overall = self.overall()
        with self.lock:
            now = self.clock()
            rows = [describe_row(row, now) for row in self.rows.values() if row.outcome is None and row.moved]
        pending = overall.done + overall.failed < overall.expected
        return ([f"progress: {describe_overall(overall)}"] if pending else []) + rows

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            for line in self.periodic_lines():
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


def describe_overall(overall: Overall, width: int | None = None) -> str:
    """`2 of 5 done · 1.2 GiB moved · ETA 4m 05s`, shorter forms when `width` asks: the count and the
    failures always, then the ETA, then the bytes."""
    failed = f", {overall.failed} failed" if overall.failed else ""
    eta = [f"ETA {format_duration(overall.eta)}"] if overall.eta is not None else []
    moved = format_bytes(overall.moved)
    short = f"{overall.done}/{overall.expected}{failed}"
    forms = [[f"{overall.done} of {overall.expected} done{failed}", f"{moved} moved", *eta],
             [short, moved, *eta], [short, *eta], [short]]
    lines = [" · ".join(form) for form in forms]
    if width is None:
        return lines[0]
    return next((line for line in lines if len(line) <= width), lines[-1][:width])


def format_duration(seconds: float) -> str:
    """`45s`, `4m 05s`, `1h 05m`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


@dataclass(frozen=True)
class RowLayout:
    """Column widths that add up to at most the console's width, so a row never wraps: the name gets
    what the bar does not need (up to the longest name); on narrower consoles the rate, then the bar,
    then the byte counts (the bar is back, being narrower) are left out before names get too short."""

    name: int
    bar: int  # 0: no bar
    rate: bool
    bytes: bool = True

    STAGE = 9  # "in bucket"
    BYTES = 17  # "1023.9/1023.9 MiB"
    RATE = 12  # "1023.9 MiB/s"
    MIN_NAME, MIN_BAR, MAX_BAR = 16, 10, 40
    CHOICES = ((MIN_BAR, True, True), (MIN_BAR, True, False), (0, True, False), (MIN_BAR, False, False))

    @classmethod
    def fit(cls, width: int, longest: int | None = None) -> RowLayout:
        """For a console `width` columns wide and names up to `longest` characters (None: any)."""
        longest = width if longest is None else max(1, longest)
        for bar, shows_bytes, rate in cls.CHOICES:
            room = (width - cls.STAGE - 1 - (bar + 1 if bar else 0) - (cls.BYTES + 1 if shows_bytes else 0)
                    - (cls.RATE + 1 if rate else 0))
            if room >= min(cls.MIN_NAME, longest):
                name = min(room, longest)
                return cls(name, min(cls.MAX_BAR, bar + room - name) if bar else 0, rate, shows_bytes)
        return cls(max(1, width - cls.STAGE - 1), 0, False, bytes=False)

    @property
    def width(self) -> int:
        return (self.name + 1 + self.STAGE + (self.BYTES + 1 if self.bytes else 0) + (self.bar + 1 if self.bar else 0)
                + (self.RATE + 1 if self.rate else 0))


@dataclass(frozen=True)
class RowView:
    """What a frame shows of a row, read under the display's lock and drawn outside it."""

    name: str
    label: str
    outcome: str | None
    fraction: float
    completed: int
    total: int | None
    has_parts: bool
    rate: float | None

    @classmethod
    def of(cls, row: Row, now: float) -> RowView:
        return cls(row.name, row.label, row.outcome, row.fraction, row.completed, row.total, bool(row.parts),
                   row.rate(now))


class RichProgress(_Display):
    """One live display for the whole command: the overall line, then a line per row; no line ever wraps
    (names are shortened to fit the console's width, measured at each frame); redrawn in place, left
    on screen once at close()."""

    def __init__(self, console: Any = None, *, clock: Clock = time.monotonic) -> None:  # console: a rich Console
        super().__init__(clock)
        from rich.live import Live

        self.console = console or make_console(sys.stderr)
        self._live = Live(console=self.console, auto_refresh=True, refresh_per_second=8, transient=False,
                          get_renderable=self.frame)
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
                self._live.start()
                self._started = True

    def finished(self, row: Row) -> None:
        with self._start_lock:
            if self._started:
                self._live.refresh()

    def log(self, line: str) -> None:
        """Above the live rows, which are redrawn below it."""
        # Not while the display starts: that frame would be left behind. Under the live display's own
        # lock: rich takes it only to choose the cursor movement, then draws outside it, so a refresh
        # between the two would leave a frame behind.
        with self._start_lock, self._live._lock:
            # Wrapped by rich itself (not soft-wrapped by the terminal), so it knows how many lines to skip.
            self.console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        with self._start_lock:
            started, self._started = self._started, False
            if started:
                self._live.stop()
        if started:
            show_lines_with(None)  # once the last frame is drawn; lines go straight to the terminal again

    def frame(self) -> Any:  # a rich renderable
        """The overall line and the rows, as wide as the console is now, less its last column (some
        terminals wrap there)."""
        overall = self.overall()
        with self.lock:
            now = self.clock()
            views = [RowView.of(row, now) for row in self.rows.values()]
            # Bare tasks alone (nothing told, no spec's row) have nothing to count.
            counting = self.expected is not None or any(row.counted for row in self.rows.values())
        width = self.console.width - 1
        return render_frame(views, overall if counting else None, width)


def render_frame(views: Sequence[RowView], overall: Overall | None, width: int) -> Any:  # a rich renderable
    from rich.console import Group
    from rich.table import Column, Table
    from rich.text import Text

    layout = RowLayout.fit(width, max((len(view.name) for view in views), default=None))

    def fixed(size: int) -> Column:
        return Column(width=size, no_wrap=True, overflow="crop")

    columns = [fixed(layout.name), fixed(RowLayout.STAGE)]
    columns += [fixed(layout.bar)] if layout.bar else []
    columns += [fixed(RowLayout.BYTES)] if layout.bytes else []
    columns += [fixed(RowLayout.RATE)] if layout.rate else []
    table = Table.grid(*columns, padding=(0, 1))
    for view in views:
        table.add_row(*_cells(view, layout))
    if overall is None:
        return table
    return Group(Text(describe_overall(overall, width), no_wrap=True, overflow="crop"), table)


def _cells(view: RowView, layout: RowLayout) -> list[Any]:
    from rich.progress_bar import ProgressBar
    from rich.text import Text

    style = {"failed": "red", None: ""}.get(view.outcome, "green")
    cells: list[Any] = [Text(shorten(view.name, layout.name)), Text(view.label[:RowLayout.STAGE], style=style)]
    if layout.bar:
        failed = view.outcome == "failed"
        cells.append(ProgressBar(total=1.0, completed=view.fraction, width=layout.bar,
                                 complete_style="red" if failed else "bar.complete",
                                 finished_style="red" if failed else "bar.finished"))
    if layout.bytes:
        shown = view.has_parts and view.outcome in (None, "done", "failed")
        cells.append(Text(format_fraction(view.completed, view.total) if shown else "", justify="right"))
    if layout.rate:
        cells.append(Text(f"{format_bytes(view.rate)}/s" if view.rate is not None else "", justify="right"))
    return cells


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle where names differ least."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def progress_for(stream: TextIO = sys.stderr, quiet: bool = False) -> NullProgress | LogProgress | RichProgress:
    """The display for a command; use it as a context manager, so the live display ends with the command."""
    if quiet:
        return NullProgress()
    if stream.isatty():
        return RichProgress(make_console(stream))
    return LogProgress(stream)


