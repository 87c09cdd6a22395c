"""Who the commits of maintainer and contributor commands are made as."""

from __future__ import annotations

import git as gitpython

from . import git


def commit_env(repo: gitpython.Repo) -> dict[str, str]:
    """The user's own identity where git has one; else the exchange bot's, so the command still works
    in a fresh container (the same fallback `process` uses)."""
    return {} if git.has_identity(repo) else git.bot_identity_env()
