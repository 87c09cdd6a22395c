"""`exchange fetch`: download a processed rootfs, verify its hash, optionally extract it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from ..progress import format_bytes
from ..quoting import printable
from ..rootfs import ARTIFACTS
from .catalog_options import bucket_option, open_catalog, repo_option, warn_decisions
from .conventions import STDOUT, file_or_stdout, format_option, json_emitted, report_stream, verbosity_options
from .options import storage_bucket

if TYPE_CHECKING:
    from ..catalog.lifecycle import Decision
    from ..fetch.run import FetchOutcome, FetchTarget


@click.command("fetch")
@click.argument("reference", metavar="[ORG/]NAME[@VERSION] | MANIFEST | URL")
@click.option("-o", "--output", "out_file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write the tarball to this file (- for standard output) [default: its object name in --output-dir].")
@click.option("--output-dir", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The directory for the tarball (without -o) and for --extract.")
@click.option("--extract", is_flag=True, help="Also unpack the rootfs into DIR/<org>-<name>-<version>/ (DIR: --output-dir), safely.")
@click.option("--artifact", type=click.Choice(ARTIFACTS), default="tarball", show_default=True,
              help="Which published file: the rootfs tarball, or the squashfs image (when the exchange publishes one).")
@bucket_option
@repo_option
@format_option("text", "json", default="text")
@verbosity_options
def command(reference: str, out_file: Path | None, out_dir: Path, extract: bool, artifact: str,
            bucket_uri: str | None, repo: Path | None, output_format: str) -> None:
    """Download the rootfs of a processed version (default: the newest) from its rootfs URL (http(s)://,
    gs://, file://), or from --bucket, verifying its hash as it arrives. A manifest file or URL (a catalog
    page's link) needs no exchange around."""
    from ..fetch.run import fetch_rootfs  # the downloader, imported when the command runs (commands/__init__.py)

    if extract and artifact != "tarball":
        raise UsageError("--extract unpacks the tarball; a squashfs image is mounted or unpacked as it is "
                         "(docs/squashfs.md)")
    target, yank = _target(reference, repo)
    bucket = storage_bucket(bucket_uri, None) if bucket_uri else None
    if out_file is not None and str(out_file) == STDOUT and extract:
        raise UsageError("-o - sends the tarball to standard output; --extract unpacks a file: give -o FILE")
    with file_or_stdout(out_file) if out_file is not None else contextlib.nullcontext(None) as destination:
        outcome = fetch_rootfs(target, out_dir, extract=extract, bucket=bucket, file=destination, artifact=artifact)
    report = report_stream(out_file)
    if out_file is not None and str(out_file) == STDOUT:
        outcome = dataclasses.replace(outcome, path=out_file)
    if output_format == "json":
        click.echo(json.dumps({**outcome_as_json(outcome), "yanked": yank.as_json() if yank else None}, indent=2),
                   file=report)
        json_emitted()
        return
    click.echo(file=report, message=printable(f"{outcome.path}  {outcome.rootfs_hash}  {format_bytes(outcome.size)} (its hash matches "
                         f"the manifest; from {outcome.source}; `exchange verify` checks its signed provenance)"))
    if outcome.extracted_to is not None and outcome.extraction is not None:
        summary = outcome.extraction
        skipped = f", {summary.skipped} special file(s) skipped" if summary.skipped else ""
        click.echo(file=report, message=printable(f"extracted to {outcome.extracted_to}: {summary.files} files, {summary.directories} "
                             f"directories, {summary.links} links{skipped}"))


def _target(reference: str, repo: Path | None) -> tuple[FetchTarget, Decision | None]:
    """A manifest's file or URL is read as it is (--repo plays no part: no yank is known there); anything
    else names a version of the exchange's catalog: without @VERSION never a yanked one, with it a yanked
    one too, with a warning."""
    from ..catalog.reference import EntryReference, find_processed_version, resolve
    from ..fetch.manifest_source import names_manifest, read_manifest
    from ..fetch.run import FetchTarget

    if names_manifest(reference):
        return FetchTarget.of_manifest(read_manifest(reference)), None
    resolved = resolve(open_catalog(repo)[1], EntryReference.parse(reference))
    version = find_processed_version(resolved.entry, resolved.version)
    warn_decisions(resolved.entry, version)
    return FetchTarget.of_version(resolved.entry, version), version.yank


def outcome_as_json(outcome: FetchOutcome) -> dict[str, Any]:
    summary = outcome.extraction
    return {"path": str(outcome.path), "rootfs-hash": outcome.rootfs_hash, "size": outcome.size,
            "source": outcome.source, "verified": True,
            "extracted-to": str(outcome.extracted_to) if outcome.extracted_to is not None else None,
            "files": summary.files if summary else None, "directories": summary.directories if summary else None,
            "links": summary.links if summary else None, "skipped": summary.skipped if summary else None}
