"""`exchange inventory`: one row per gear, as a table, JSON or CSV."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from ..durable import write_atomically
from ..errors import writing
from ..logs import logger
from .catalog_options import open_catalog, repo_option
from .conventions import format_option, output_option, verbosity_options

if TYPE_CHECKING:
    from ..catalog.inventory import InventoryRow

LOG = logger("inventory")


@click.command("inventory")
@format_option("text", "json", "csv", default="text")
@output_option("the inventory")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), hidden=True,
              help="The same as --format csv -o FILE.")
@repo_option
@verbosity_options
def command(output_format: str, output: Path | None, csv_path: Path | None, repo: Path | None) -> None:
    """One row per gear: name, label, latest version, image, api-key use, license, author, maintainer, source, url."""
    from ..catalog.inventory import inventory_rows  # imported when the command runs (commands/__init__.py)

    if csv_path is not None:
        output_format, output = "csv", csv_path
    rows = inventory_rows(open_catalog(repo)[1])
    if output is None or str(output) == "-":
        _print(rows, output_format, sys.stdout)
        return
    rendered = io.StringIO(newline="")
    _print(rows, output_format, rendered)
    with writing(output, "the inventory"):
        write_atomically(output, rendered.getvalue(), make_parents=False)
    LOG.info(f"wrote {len(rows)} gear(s) to {output}")


def _print(rows: list[InventoryRow], output_format: str, stream: TextIO) -> None:
    from ..catalog.inventory import render_inventory, write_csv

    if output_format == "csv":
        write_csv(rows, stream)
    elif output_format == "json":
        documents = [{key.replace("_", "-"): value for key, value in asdict(row).items()} for row in rows]
        print(json.dumps(documents, indent=2), file=stream)
    else:
        render_inventory(rows, stream)
