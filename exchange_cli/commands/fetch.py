"""`exchange fetch`: download a processed rootfs, verify its hash, optionally extract it."""

from __future__ import annotations

from pathlib import Path

import click

from ..catalog.reference import EntryReference, find_entry, find_processed_version
from ..fetch.run import fetch_rootfs
from .catalog_options import bucket_option, open_catalog, repo_option
from .options import storage_bucket


@click.command("fetch")
@click.argument("reference", metavar="[ORG/]NAME[@VERSION]")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory to download into.")
@click.option("--extract", is_flag=True, help="Also unpack the rootfs into DIR/<org>-<name>-<version>/, safely.")
@bucket_option
@repo_option
def command(reference: str, out_dir: Path, extract: bool, bucket_uri: str | None, repo: Path | None) -> None:
    """Download the rootfs of a processed version (default: the newest) from its rootfs URL (http(s)://,
    gs://, file://), or from --bucket, verifying its hash as it arrives."""
    parsed = EntryReference.parse(reference)
    entry = find_entry(open_catalog(repo)[1], parsed)
    version = find_processed_version(entry, parsed.version)
    bucket = storage_bucket(bucket_uri, None) if bucket_uri else None
    outcome = fetch_rootfs(entry, version, out_dir, extract=extract, bucket=bucket)
    click.echo(f"{outcome.path}  {outcome.rootfs_hash}  {outcome.size} bytes (verified, from {outcome.source})")
    if outcome.extracted_to is not None and outcome.extraction is not None:
        summary = outcome.extraction
        skipped = f", {summary.skipped} special file(s) skipped" if summary.skipped else ""
        click.echo(f"extracted to {outcome.extracted_to}: {summary.files} files, {summary.directories} directories, "
                   f"{summary.links} links{skipped}")
