"""`exchange history`: the specs processed so far, from git (spec, version, date, commit)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from ..process.history import deepen, processed_history
from ..repository import Exchange


@click.command("history")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), help="The exchange repository [default: the one around the current directory].")
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Only the N most recent processing commits.")
@click.option("--deepen", "deepen_clone", is_flag=True, help="In a shallow clone, first fetch the whole history from --remote.")
@click.option("--remote", envvar="GIT_REMOTE", default="origin", show_default=True, help="Where --deepen fetches from.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def command(repo: Path | None, limit: int | None, deepen_clone: bool, remote: str, output_format: str) -> None:
    """List the commits that published manifests, newest first."""
    exchange = Exchange.open(repo)
    if deepen_clone:
        deepen(exchange, remote)
    history = processed_history(exchange, limit=limit)
    for problem in history.problems:
        click.echo(f"warning: not listed: {problem}", err=True)
    if any(entry.at_clone_boundary for entry in history.entries):
        click.echo("warning: this is a shallow clone: manifests older than the clone are all shown at its oldest "
                   "commit, with that commit's date (marked 'clone boundary'); run with --deepen for the real ones",
                   err=True)
    if output_format == "json":
        click.echo(json.dumps([{**asdict(entry), "spec": entry.spec} for entry in history.entries], indent=2))
        return
    if not history.entries:
        click.echo("nothing processed yet")
    for entry in history.entries:
        stored = f" [entry {entry.entry}]" if entry.entry.rsplit("/", 1)[-1] != entry.name else ""
        boundary = "  (clone boundary)" if entry.at_clone_boundary else ""
        click.echo(f"{entry.date}  {entry.commit[:12]}  {entry.spec} {entry.version}{stored}  {entry.manifest}{boundary}")
