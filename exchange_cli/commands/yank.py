"""`exchange yank`: mark a published version as not to be chosen, keeping everything it published."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .catalog_options import open_catalog
from .lifecycle_output import commit_and_report, decision_options


@click.command("yank")
@click.argument("reference", metavar="[ORG/]NAME@VERSION")
@click.option("--reason", required=True, help="Why (shown wherever the version is: list, show, fetch, verify, the catalog).")
@decision_options
def command(reference: str, reason: str, push: bool, remote: str, repo: Path | None, output_format: str) -> None:
    """Yank a processed version: never chosen as the newest again, still fetchable and verifiable by its exact
    version with a warning; recorded in one commit (who, when, why), nothing deleted."""
    # imported when the command runs (commands/__init__.py)
    from ..catalog.reference import EntryReference, resolve
    from ..contrib.lifecycle import plan_yank

    parsed = EntryReference.parse(reference)
    exchange, catalog = open_catalog(repo)
    resolved = resolve(catalog, parsed)
    if resolved.version is None:
        raise UsageError(f"{reference}: name the version to yank, as ORG/NAME@VERSION")
    change = plan_yank(exchange, catalog, resolved.entry, resolved.version, reason)
    commit_and_report(exchange, change, push=push, remote=remote, output_format=output_format)
