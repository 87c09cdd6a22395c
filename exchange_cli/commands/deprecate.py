"""`exchange deprecate`: say a gear or boutique should no longer be used, and what replaces it."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .catalog_options import open_catalog
from .lifecycle_output import commit_and_report, decision_options


@click.command("deprecate")
@click.argument("reference", metavar="[ORG/]NAME")
@click.option("--reason", help="Why (shown by list, show, fetch, verify and the catalog); required unless --undo.")
@click.option("--replaced-by", metavar="ORG/NAME", help="The gear or boutique to use instead (it must be in the exchange).")
@click.option("--undo", is_flag=True, help="Lift the deprecation instead.")
@decision_options
def command(reference: str, reason: str | None, replaced_by: str | None, undo: bool, push: bool, remote: str,
            repo: Path | None, output_format: str) -> None:
    """Deprecate a gear or boutique (every version stays usable; each use warns with the reason), in one
    commit that records who, when and why."""
    # imported when the command runs (commands/__init__.py)
    from ..catalog.reference import EntryReference, resolve
    from ..contrib.lifecycle import plan_deprecation, plan_undeprecation

    parsed = EntryReference.parse(reference)
    if parsed.version is not None:
        raise UsageError(f"{reference}: deprecate names a whole gear (ORG/NAME); to withdraw one version, yank it")
    if undo and (reason is not None or replaced_by is not None):
        raise UsageError("--undo lifts the deprecation; it takes no --reason or --replaced-by")
    if not undo and reason is None:
        raise UsageError("--reason is required: say why the gear is deprecated")
    exchange, catalog = open_catalog(repo)
    entry = resolve(catalog, parsed).entry
    change = plan_undeprecation(catalog, entry) if undo else \
        plan_deprecation(exchange, catalog, entry, reason or "", replaced_by)
    commit_and_report(exchange, change, push=push, remote=remote, output_format=output_format)
