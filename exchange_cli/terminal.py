"""The rich consoles the commands print with: one place that decides how a closed pipe ends.

rich exits with status 1 when its reader goes away; `exchange list | head` must end quietly with 0,
which the CLI does for every BrokenPipeError (cli.ExchangeGroup.invoke), so our consoles raise one.
NO_COLOR and a stream that is not a terminal are honoured by rich itself. rich is imported on first
use, so commands that print no table do not pay for it.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


@cache
def _console_class() -> type[Console]:
    from rich.console import Console

    class PipeAwareConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PipeAwareConsole


def console(stream: TextIO | None = None, **options: Any) -> Console:
    """A rich Console on `stream` (default: stdout)."""
    return _console_class()(file=stream, **options)
