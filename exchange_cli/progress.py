"""Progress for long work, as the layers that do it see it: a `Progress` to open tasks and rows on, and the
byte counts it is told. The displays that show it (live rows on a terminal, periodic lines in logs) are in
display.py, chosen by the commands; image sources, exports and uploads know only this protocol.

Feeders (image sources, the export, uploads) open tasks on the Progress they are given and advance
them by the bytes they move; `skip` says bytes are already at hand (a cache hit: less work, not a
faster transfer) and `set_total` gives the size once it is known. A caller that works on something
with a name opens a *row*: `with progress.row("acme/hello@1.0", "fetch") as row:` and hands `row` to
the feeders, so every task they open is summed on that one line, labelled with the stage. `expect` tells
the display how many rows to count to and which stages a row goes through. Sizes are IEC units everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, Self

PIPELINE = ("fetch", "write", "upload")  # a spec's stages in `exchange process`


class Task(Protocol):
    def advance(self, amount: int) -> None: ...

    def skip(self, amount: int) -> None: ...

    def set_total(self, total: int | None) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None = None) -> AbstractContextManager[Task]: ...

    def row(self, name: str, stage: str, *, done: str | None = None,
            unchanged: str = "cached") -> AbstractContextManager[Progress]: ...

    def expect(self, count: int | None = None, stages: Sequence[str] = PIPELINE, *,
               stages_of: Mapping[str, Sequence[str]] | None = None) -> None: ...

    def log(self, line: str) -> None: ...


class NullTask:
    def advance(self, amount: int) -> None:
        pass

    def skip(self, amount: int) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


class Output:
    """What every display shares: log lines go to stderr, and it ends with the `with` block it opens."""

    def log(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NullProgress(Output):
    """No output (--quiet, library callers)."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        yield NullTask()

    @contextmanager
    def row(self, name: str, stage: str, *, done: str | None = None, unchanged: str = "cached") -> Iterator[Progress]:
        yield self

    def expect(self, count: int | None = None, stages: Sequence[str] = PIPELINE, *,
               stages_of: Mapping[str, Sequence[str]] | None = None) -> None:
        pass


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
