"""`exchange unyank`: lift a yank, so the version can be chosen as the newest again."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .catalog_options import open_catalog
from .lifecycle_output import commit_and_report, decision_options


@click.command("unyank")
@click.argument("reference", metavar="[ORG/]NAME@VERSION")
@decision_options
def command(reference: str, push: bool, remote: str, repo: Path | None, output_format: str) -> None:
    """Lift the yank of a version, in one commit: it can be chosen as the newest again."""
    # imported when the command runs (commands/__init__.py)
    from ..catalog.reference import EntryReference, resolve
    from ..contrib.lifecycle import plan_unyank

    parsed = EntryReference.parse(reference)
    exchange, catalog = open_catalog(repo)
    resolved = resolve(catalog, parsed)
    if resolved.version is None:
        raise UsageError(f"{reference}: name the version to unyank, as ORG/NAME@VERSION")
    commit_and_report(exchange, plan_unyank(catalog, resolved.entry, resolved.version), push=push, remote=remote,
                      output_format=output_format)
