"""`exchange verify-storage`: the bucket against the manifests; exit 1 when anything is wrong."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..catalog.storage_audit import audit_exchange_storage, deletable_orphans, delete_orphans
from ..catalog.storage_report import audit_as_json, render_audit
from ..manifests import load_manifests
from ..provenance.keys import repository_keys
from ..repository import Exchange
from ..storage.lease import leased
from .catalog_options import bucket_option, json_option, repo_option
from .options import storage_bucket


@click.command("verify-storage")
@bucket_option
@click.option("--deep", is_flag=True, help="Also download and hash every referenced object (slow), check every signed envelope against the exchange's keys, and list unsigned manifests.")
@click.option("--delete-orphans", "delete_requested", is_flag=True, help="Delete objects no manifest references, after confirmation.")
@click.option("--yes", is_flag=True, help="Do not ask before deleting.")
@json_option
@repo_option
def command(bucket_uri: str | None, deep: bool, delete_requested: bool, yes: bool, as_json: bool,
            repo: Path | None) -> None:
    """Find artifacts missing for a manifest, objects no manifest references (orphans), and with --deep
    objects whose content no longer matches its hash."""
    exchange = Exchange.open(repo)
    bucket = storage_bucket(bucket_uri, None)
    # Deleting waits for the publish lease: an object a running `process` uploaded is not an orphan.
    with leased(bucket, "verify-storage --delete-orphans", enabled=delete_requested,
                log=lambda line: click.echo(line, err=True)):
        _audit_and_delete(exchange, bucket, deep, delete_requested, yes, as_json)


def _audit_and_delete(exchange: Exchange, bucket, deep: bool, delete_requested: bool, yes: bool,  # noqa: ANN001
                      as_json: bool) -> None:
    if delete_requested:
        for name in bucket.remove_abandoned_uploads():
            click.echo(f"removed the partial upload {name}: the run that wrote it is gone", err=True)
    audit = audit_exchange_storage(load_manifests(exchange.manifests_dir), bucket, deep=deep,
                                   keys=repository_keys(exchange.root))
    if as_json:
        click.echo(json.dumps(audit_as_json(audit), indent=2))
    else:
        render_audit(audit, sys.stdout)
    if delete_requested and audit.orphans:
        orphans = deletable_orphans(audit)
        if not yes:
            click.confirm(f"delete {len(orphans)} orphan object(s) from {bucket.uri}?", abort=True, err=True)
        deleted, kept = delete_orphans(bucket, orphans)
        click.echo(f"deleted {len(deleted)} orphan(s)", err=True)
        for name in kept:
            click.echo(f"kept {name}: it was replaced since the audit", err=True)
        audit.orphans = [o for o in audit.orphans if o.name not in deleted]
    sys.exit(0 if audit.ok else 1)
