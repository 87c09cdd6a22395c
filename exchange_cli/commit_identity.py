"""Who the commits of maintainer and contributor commands are made as."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import git

if TYPE_CHECKING:
    import git as gitpython


def commit_env(repo: gitpython.Repo) -> dict[str, str]:
    """The user's own identity where git has one; else the exchange bot's, so the command still works
    in a fresh container (the same fallback `process` uses)."""
    return {} if git.has_identity(repo) else git.bot_identity_env()


def author_now(repo: gitpython.Repo) -> tuple[str, str]:
    """Who a commit made now is authored by (``Name <email>``, the identity `commit_env` gives) and when
    (ISO 8601, UTC): what a maintainer's decision records beside its commit."""
    from datetime import UTC, datetime

    with repo.git.custom_environment(**commit_env(repo)):
        ident = repo.git.var("GIT_AUTHOR_IDENT")  # "Name <email> 1700000000 +0100"
    person, _, stamp = ident.rpartition("> ")
    seconds = int(stamp.split()[0])
    return f"{person}>", datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
