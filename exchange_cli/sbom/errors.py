"""A package database file that cannot be used: named in the SBOM's warnings, never a traceback."""

from __future__ import annotations


class Unreadable(ValueError):
    """The file is not what its path promises; the message says why, in one line."""
