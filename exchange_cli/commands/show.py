"""`exchange show`: one processed version's image, digests, rootfs and commit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .catalog_options import bucket_option, open_catalog, repo_option, warn_decisions
from .conventions import emit_json, format_option, verbosity_options
from .options import storage_bucket


@click.command("show")
@click.argument("reference", metavar="[ORG/]NAME[@VERSION]")
@format_option("text", "json", default="text", aliases={"--json": "json"})
@bucket_option
@repo_option
@verbosity_options
def command(reference: str, output_format: str, bucket_uri: str | None, repo: Path | None) -> None:
    """Show a processed version (default: the newest): image, digest, rootfs URL, hash, size, commit."""
    # imported when the command runs (commands/__init__.py)
    from ..catalog.essentials import essentials, render_essentials
    from ..catalog.reference import EntryReference, find_processed_version, resolve

    resolved = resolve(open_catalog(repo)[1], EntryReference.parse(reference))
    bucket = storage_bucket(bucket_uri, None) if bucket_uri else None
    version = find_processed_version(resolved.entry, resolved.version)  # without @VERSION: never a yanked one
    warn_decisions(resolved.entry, version)
    details = essentials(resolved.entry, version, bucket)
    if output_format == "json":
        emit_json(details)
    else:
        render_essentials(details, sys.stdout)
