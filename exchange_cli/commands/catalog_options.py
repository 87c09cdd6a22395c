"""Options the catalog commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

from ..catalog.model import Catalog, load_catalog
from ..repository import Exchange

repo_option: Callable = click.option(
    "--repo", type=click.Path(file_okay=False, path_type=Path),
    help="The exchange repository [default: the one around the current directory].")
bucket_option: Callable = click.option(
    "--bucket", "bucket_uri", metavar="URI", help="gs://bucket[/prefix] or file:///path [env: EXCHANGE_BUCKET_URI].")
json_option: Callable = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def open_catalog(repo: Path | None) -> tuple[Exchange, Catalog]:
    """The exchange and its catalog; each manifest or spec that could not be read or placed is named
    on stderr, so that nothing is left out silently."""
    exchange = Exchange.open(repo)
    catalog = load_catalog(exchange)
    for problem in catalog.problems:
        click.echo(f"warning: not listed: {problem}", err=True)
    return exchange, catalog
