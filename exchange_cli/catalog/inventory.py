"""`exchange inventory`: one row per gear, the columns maintainers audit (api-key use, licence, owners)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from typing import Any, TextIO

from ..quoting import printable
from ..specs import SpecKind, image_field
from .model import Catalog, CatalogEntry


@dataclass(frozen=True)
class InventoryRow:
    org: str
    name: str
    entry: str  # org/file-stem of the spec file, which names the artifacts
    label: str
    latest_version: str
    image: str
    api_key: str  # "no", "read-only" or "read-write"
    license: str
    author: str
    maintainer: str
    source: str
    url: str


COLUMNS = [f.name for f in fields(InventoryRow)]


def inventory_rows(catalog: Catalog) -> list[InventoryRow]:
    return [_row(entry) for entry in catalog.entries if entry.kind is SpecKind.GEAR and entry.latest is not None]


def api_key_access(spec: dict[str, Any]) -> str:
    """Whether the gear takes a Flywheel api-key input, and with which access."""
    inputs = spec.get("inputs")
    keys = [i for i in inputs.values() if isinstance(i, dict) and i.get("base") == "api-key"] \
        if isinstance(inputs, dict) else []
    if not keys:
        return "no"
    return "read-only" if all(k.get("read-only") is True for k in keys) else "read-write"


def write_csv(rows: list[InventoryRow], stream: TextIO) -> None:
    writer = csv.DictWriter(stream, fieldnames=COLUMNS)  # RFC 4180: CRLF, so a CR in a cell is quoted too
    writer.writeheader()
    writer.writerows({column: spreadsheet_safe(value) for column, value in asdict(row).items()} for row in rows)


# A cell a spreadsheet would read as a formula (OWASP's CSV injection): =, +, -, @, or a tab or carriage
# return that some programs skip before looking for one.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """`value`, with a leading ' when a spreadsheet would otherwise run it (the mark spreadsheets hide)."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def render_inventory(rows: list[InventoryRow], stream: TextIO) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..terminal import console

    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    shown = ("org", "name", "entry", "latest_version", "api_key", "license", "maintainer", "image")
    for column in shown:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(Text(printable(getattr(row, column))) for column in shown))  # the specs' text, never markup
    console(stream, width=None if stream.isatty() else 240).print(table)


def _row(entry: CatalogEntry) -> InventoryRow:
    latest = entry.latest
    assert latest is not None
    spec = latest.spec

    def text(key: str) -> str:
        value = spec.get(key)
        return value if isinstance(value, str) else ""

    image = image_field(spec, entry.kind)[1]
    return InventoryRow(entry.org or "", entry.name, entry.entry_ref or entry.ref, text("label"), latest.version, image if isinstance(image, str) else "",
                        api_key_access(spec), text("license"), text("author"), text("maintainer"), text("source"),
                        text("url"))
