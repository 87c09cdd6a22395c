"""Log lines through the `logging` module: what a command does (info), and with -v what it asks of
registries, the layer cache and git (debug); with -q only warnings and errors.

Everything logs under the `exchange` logger; gitpython's command log (`git.cmd`) joins in at debug,
one line per git command. Every line passes `redact`, so a URL's credentials never reach a terminal
or a CI log, and `printable_lines`, so a contributor's name cannot move the cursor (names are escaped, line
breaks included, where they are put into a message: plan.SpecJob.title). Lines go to stderr, or above the live progress rows while a display is running.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from enum import IntEnum

from .errors import redact
from .quoting import printable_lines

LOGGER_NAME = "exchange"
GIT_LOGGER_NAME = "git.cmd"


class Verbosity(IntEnum):
    QUIET = -1  # the result and errors only
    NORMAL = 0
    VERBOSE = 1


_LEVELS = {Verbosity.QUIET: logging.WARNING, Verbosity.NORMAL: logging.INFO, Verbosity.VERBOSE: logging.DEBUG}


def logger(name: str) -> logging.Logger:
    """`exchange.<name>`, for a module's log lines."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class LineHandler(logging.Handler):
    """One line per record, to stderr or to the display that is showing live rows."""

    sink: Callable[[str], None] = staticmethod(_stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = printable_lines(redact(_describe(record)))  # a name in it can move no cursor
            self.sink(line)
        except Exception:  # noqa: BLE001 - a log line must never break the command
            self.handleError(record)


def _describe(record: logging.LogRecord) -> str:
    if record.name == GIT_LOGGER_NAME:
        args = record.args
        if not (str(record.msg).startswith("Popen(") and isinstance(args, tuple) and args
                and isinstance(args[0], (list, tuple))):
            return f"git: {record.getMessage()}"
        command = [str(part) for part in args[0]]
        return "git: " + " ".join(command[1:] if command and command[0].endswith("git") else command)
    message = record.getMessage()
    if record.levelno >= logging.WARNING:
        return f"{record.levelname.lower()}: {message}"
    return message


_HANDLER = LineHandler()


def configure(verbosity: Verbosity) -> None:
    """Set the levels for this command; safe to call more than once (tests run many commands)."""
    level = _LEVELS[verbosity]
    ours = logging.getLogger(LOGGER_NAME)
    ours.setLevel(level)
    ours.propagate = False
    if _HANDLER not in ours.handlers:
        ours.addHandler(_HANDLER)
    git = logging.getLogger(GIT_LOGGER_NAME)
    git.setLevel(logging.DEBUG if verbosity is Verbosity.VERBOSE else logging.WARNING)
    git.propagate = False
    if _HANDLER not in git.handlers:
        git.addHandler(_HANDLER)


def show_lines_with(sink: Callable[[str], None] | None) -> None:
    """While a live display runs, log lines are printed by it (above its rows); None: stderr again.
    Under the handler's lock, which a line holds while it is written: once this returns, no line is
    still on its way to the old sink."""
    lock = _HANDLER.lock
    assert lock is not None  # logging.Handler.__init__ made it
    with lock:
        _HANDLER.sink = sink or _stderr
