"""Options the catalog commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..logs import logger
from ..quoting import printable
from .conventions import Command, repo_option

if TYPE_CHECKING:
    from ..catalog.model import Catalog, CatalogEntry, CatalogVersion
    from ..repository import Exchange

__all__ = ["bucket_option", "open_catalog", "repo_option", "warn_decisions"]

LOG = logger("catalog")

bucket_option: Callable[[Command], Command] = click.option(
    "--bucket", "bucket_uri", metavar="URI", help="gs://bucket[/prefix] or file:///path [env: EXCHANGE_BUCKET_URI].")


def open_catalog(repo: Path | None) -> tuple[Exchange, Catalog]:
    """The exchange and its catalog; each manifest or spec that could not be read or placed is named
    on stderr, so that nothing is left out silently."""
    from ..catalog.model import load_catalog  # the catalog, read when a command runs (commands/__init__.py)
    from ..repository import Exchange

    exchange = Exchange.open(repo)
    catalog = load_catalog(exchange)
    for problem in catalog.problems:
        LOG.warning(f"not listed: {problem}")
    return exchange, catalog


def warn_decisions(entry: CatalogEntry, version: CatalogVersion | None) -> None:
    """A yanked version (used by its exact version) or a deprecated gear: said on stderr, with the reason."""
    from ..catalog.model import entry_warnings

    for warning in entry_warnings(entry, version):
        LOG.warning(printable(warning))
