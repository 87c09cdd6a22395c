"""`exchange list`: every gear and boutique with its versions, newest first."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .catalog_options import open_catalog, repo_option
from .conventions import emit_json, format_option, verbosity_options


@click.command("list")
@click.option("--org", help="Only this org.")
@format_option("text", "json", default="text", aliases={"--json": "json"})
@repo_option
@verbosity_options
def command(org: str | None, output_format: str, repo: Path | None) -> None:
    """List every gear and boutique with its versions, newest first, and whether each is processed."""
    from ..catalog.listing import listing_as_json, render_listing  # when it runs (commands/__init__.py)

    entries = open_catalog(repo)[1].in_org(org)
    if output_format == "json":
        emit_json(listing_as_json(entries))
    else:
        render_listing(entries, sys.stdout)
