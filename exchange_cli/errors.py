"""Errors the CLI turns into a message and an exit code instead of a traceback."""

from __future__ import annotations


class ExchangeError(Exception):
    """A failure the user can act on; the message is shown as is."""

    exit_code = 1


class UsageError(ExchangeError):
    """Bad options, not a git repository, an unknown path: exit 2."""

    exit_code = 2
