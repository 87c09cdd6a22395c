"""`exchange inventory`: one row per gear, as a table or CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..catalog.inventory import inventory_rows, render_inventory, write_csv
from ..errors import writing
from .catalog_options import open_catalog, repo_option


@click.command("inventory")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write CSV to this file ('-': standard output).")
@repo_option
def command(csv_path: Path | None, repo: Path | None) -> None:
    """One row per gear: name, label, latest version, image, api-key use, license, author, maintainer, source, url."""
    rows = inventory_rows(open_catalog(repo)[1])
    if csv_path is None:
        render_inventory(rows, sys.stdout)
    elif str(csv_path) == "-":
        write_csv(rows, sys.stdout)
    else:
        with writing(csv_path, "the inventory"), csv_path.open("w", encoding="utf-8", newline="") as stream:
            write_csv(rows, stream)
        click.echo(f"wrote {len(rows)} gear(s) to {csv_path}")
