"""`exchange sbom ORG/NAME[@VERSION]`: the packages a processed version's rootfs holds, from its SBOM."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..quoting import printable
from .catalog_options import bucket_option, open_catalog, repo_option
from .conventions import emit_json, format_option, verbosity_options
from .options import storage_bucket

if TYPE_CHECKING:
    from ..sbom.query import SbomSummary


@click.command("sbom")
@click.argument("reference", metavar="[ORG/]NAME[@VERSION]")
@format_option("text", "json", "cyclonedx", default="text")
@bucket_option
@repo_option
@verbosity_options
def command(reference: str, output_format: str, bucket_uri: str | None, repo: Path | None) -> None:
    """Print the SBOM of a processed version (default: the newest): its packages, or the CycloneDX document."""
    # imported when the command runs (commands/__init__.py)
    from ..catalog.reference import EntryReference, find_processed_version, resolve
    from ..fetch.sbom import read_published_sbom, summary_of

    resolved = resolve(open_catalog(repo)[1], EntryReference.parse(reference))
    version = find_processed_version(resolved.entry, resolved.version)
    shown = f"{resolved.entry.ref}@{version.version}"
    bucket = storage_bucket(bucket_uri, None) if bucket_uri else None
    document = read_published_sbom(shown, version, bucket=bucket)
    if output_format == "cyclonedx":
        sys.stdout.buffer.write(document)  # the published bytes, which the manifest's sbom-sha256 pins
        return
    summary = summary_of(shown, document)
    if output_format == "json":
        emit_json(as_json(shown, version.record.get("sbom-url"), summary))
    else:
        click.echo(render_text(shown, summary))


def as_json(shown: str, url: object, summary: SbomSummary) -> dict[str, Any]:
    return {"version": shown, "sbom-url": url, "os": summary.os, "warnings": summary.warnings,
            "components": [{"ecosystem": row.ecosystem, "name": row.name, "version": row.version, "purl": row.purl,
                            "licenses": list(row.licenses)} for row in summary.components]}


def render_text(shown: str, summary: SbomSummary) -> str:
    """A header line, then one aligned row per package; every contributor string made printable."""
    rows = [(row.ecosystem, row.name, row.version, " / ".join(row.licenses) or "-") for row in summary.components]
    lines = [printable(f"{shown}: {len(rows)} packages, OS {summary.os or 'unknown'}")]
    lines += [printable(f"warning: {warning}") for warning in summary.warnings]
    lines += table(("ECOSYSTEM", "NAME", "VERSION", "LICENSE"), rows)
    return "\n".join(lines)


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    shown = [tuple(printable(cell) for cell in row) for row in [header, *rows]]
    widths = [min(40, max(len(row[column]) for row in shown)) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in shown]
