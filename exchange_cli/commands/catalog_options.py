"""Options the catalog commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..catalog.model import Catalog, load_catalog
from ..logs import logger
from ..repository import Exchange
from .conventions import Command, repo_option

__all__ = ["bucket_option", "open_catalog", "repo_option"]

LOG = logger("catalog")

bucket_option: Callable[[Command], Command] = click.option(
    "--bucket", "bucket_uri", metavar="URI", help="gs://bucket[/prefix] or file:///path [env: EXCHANGE_BUCKET_URI].")


def open_catalog(repo: Path | None) -> tuple[Exchange, Catalog]:
    """The exchange and its catalog; each manifest or spec that could not be read or placed is named
    on stderr, so that nothing is left out silently."""
    exchange = Exchange.open(repo)
    catalog = load_catalog(exchange)
    for problem in catalog.problems:
        LOG.warning(f"not listed: {problem}")
    return exchange, catalog
