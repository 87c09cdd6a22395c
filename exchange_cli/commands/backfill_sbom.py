"""`exchange backfill-sbom`: give manifests published before SBOMs their SBOM, from the rootfs in the bucket."""

from __future__ import annotations

from pathlib import Path

import click

from ..quoting import printable
from .catalog_options import bucket_option, open_catalog, repo_option
from .conventions import emit_json, exit_with_findings, format_option, verbosity_options
from .options import storage_bucket


@click.command("backfill-sbom")
@click.argument("reference", metavar="[[ORG/]NAME[@VERSION]]", required=False)
@bucket_option
@repo_option
@click.option("--sign-key", metavar="PATH|gcpkms://…", help="Sign the SBOMs of signed versions with this key, the one that signed their provenance: a PEM file or a Cloud KMS key version [env: EXCHANGE_SIGNING_KEY]. Without it a signed version is refused.")
@format_option("text", "json", default="text")
@verbosity_options
def command(reference: str | None, bucket_uri: str | None, repo: Path | None, sign_key: str | None,
            output_format: str) -> None:
    """Make the SBOM of every processed version that has none (or of REFERENCE's), from its rootfs in the bucket.

    Each rootfs is streamed once and checked against its manifest's sha384; its SBOM is uploaded
    beside it and the manifest gets sbom-url, sbom-sha256, sbom-packages and sbom-os, in one commit
    for you to push. A signed version's SBOM is signed too (--sign-key), in a new envelope file the
    manifest then pins. Exit 1 when some could not be made (each is named).
    """
    # imported when the command runs (commands/__init__.py)
    from ..catalog.reference import EntryReference, resolve
    from ..contrib.backfill import backfill, needs_sbom
    from ..provenance.signers import open_signer

    exchange, catalog = open_catalog(repo)
    manifests = [m for entry in catalog.entries for m in entry.manifests]
    if reference is not None:
        resolved = resolve(catalog, EntryReference.parse(reference))
        manifests = [m for m in resolved.entry.manifests if resolved.version in (None, m.version)]
    chosen = sorted((m for m in manifests if needs_sbom(m)), key=lambda m: m.relative)
    # Said as each is made (each rootfs is streamed from the bucket: long work); committed at the end.
    made = (lambda path: click.echo(printable(f"SBOM made for {path}"))) if output_format == "text" else \
        (lambda path: None)
    outcome = backfill(exchange, chosen, storage_bucket(bucket_uri, None), open_signer(sign_key), made)
    if output_format == "json":
        emit_json({"backfilled": outcome.done, "commit": outcome.commit,
                   "failed": [{"manifest": path, "reason": reason} for path, reason in outcome.failed.items()]})
    else:
        for path, reason in outcome.failed.items():
            click.echo(printable(f"FAILED {path}: {reason}"), err=True)
        click.echo(f"committed {outcome.commit[:12]}: push it to publish the SBOMs" if outcome.commit else
                   "no manifest needed an SBOM" if not chosen else "nothing committed")
    exit_with_findings(not outcome.failed)
