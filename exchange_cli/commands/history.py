"""`exchange history`: the specs processed so far, from git (spec, version, date, commit)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..logs import logger
from ..quoting import printable
from .conventions import emit_json, format_option, remote_option, repo_option, verbosity_options

if TYPE_CHECKING:
    from ..process.history import ProcessedSpec

LOG = logger("history")


@click.command("history")
@repo_option
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Only the N most recent processing commits.")
@click.option("--deepen", "deepen_clone", is_flag=True, help="In a shallow clone, first fetch the whole history from --remote.")
@remote_option
@format_option("text", "json", default="text")
@verbosity_options
def command(repo: Path | None, limit: int | None, deepen_clone: bool, remote: str, output_format: str) -> None:
    """List the commits that published manifests, newest first."""
    # imported when the command runs (commands/__init__.py)
    from ..process.history import deepen, processed_history
    from ..repository import Exchange

    exchange = Exchange.open(repo)
    if deepen_clone:
        deepen(exchange, remote)
    history = processed_history(exchange, limit=limit)
    for problem in history.problems:
        LOG.warning(f"not listed: {problem}")
    if any(entry.at_clone_boundary for entry in history.entries):
        LOG.warning("this is a shallow clone: manifests older than the clone are all shown at its oldest commit, "
                    "with that commit's date (marked 'clone boundary'); run with --deepen for the real ones")
    if output_format == "json":
        emit_json([entry_as_json(entry) for entry in history.entries])
        return
    if not history.entries:
        click.echo("nothing processed yet")
    for entry in history.entries:
        stored = f" [entry {entry.entry}]" if entry.entry.rsplit("/", 1)[-1] != entry.name else ""
        boundary = "  (clone boundary)" if entry.at_clone_boundary else ""
        click.echo(printable(f"{entry.date}  {entry.commit[:12]}  {entry.spec} {entry.version}{stored}  "
                             f"{entry.manifest}{boundary}"))


def entry_as_json(entry: ProcessedSpec) -> dict[str, Any]:
    return {key.replace("_", "-"): value for key, value in asdict(entry).items()} | {"spec": entry.spec}
