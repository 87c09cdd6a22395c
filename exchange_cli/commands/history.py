"""`exchange history`: the specs processed so far, from git (spec, version, date, commit)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from ..process.history import processed_history
from ..repository import Exchange


@click.command("history")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), help="The exchange repository [default: the one around the current directory].")
@click.option("--limit", type=click.IntRange(1), metavar="N", help="Only the N most recent processing commits.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def command(repo: Path | None, limit: int | None, output_format: str) -> None:
    """List the commits that published manifests, newest first."""
    entries = processed_history(Exchange.open(repo), limit=limit)
    if output_format == "json":
        click.echo(json.dumps([{**asdict(entry), "spec": entry.spec} for entry in entries], indent=2))
        return
    if not entries:
        click.echo("nothing processed yet")
    for entry in entries:
        click.echo(f"{entry.date}  {entry.commit[:12]}  {entry.spec} {entry.version}  {entry.manifest}")
