"""Options the catalog commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

repo_option: Callable = click.option(
    "--repo", type=click.Path(file_okay=False, path_type=Path),
    help="The exchange repository [default: the one around the current directory].")
bucket_option: Callable = click.option(
    "--bucket", "bucket_uri", metavar="URI", help="gs://bucket[/prefix] or file:///path [env: EXCHANGE_BUCKET_URI].")
json_option: Callable = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
