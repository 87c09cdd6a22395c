"""`exchange verify-storage`: the bucket against the manifests; exit 1 when anything is wrong."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..logs import logger
from .catalog_options import bucket_option, repo_option
from .conventions import emit_json, exit_with_findings, format_option, jobs_option, verbosity_options, yes_option
from .options import storage_bucket

if TYPE_CHECKING:
    from ..repository import Exchange
    from ..storage.bucket import Bucket

LOG = logger("verify-storage")


@click.command("verify-storage")
@bucket_option
@click.option("--deep", is_flag=True, help="Also download and hash every referenced object (slow), check every signed envelope against the exchange's keys, and list unsigned manifests.")
@jobs_option("With --deep: download and hash")
@click.option("--delete-orphans", "delete_requested", is_flag=True, help="Delete objects no manifest references, after confirmation.")
@yes_option
@click.option("--remote", envvar="GIT_REMOTE", default="origin", show_default=True,
              help="Never delete what the manifests at this git remote (the checked-out branch) reference, even "
                   "when this checkout is behind it [env: GIT_REMOTE].")
@format_option("text", "json", default="text", aliases={"--json": "json"})
@repo_option
@verbosity_options
def command(bucket_uri: str | None, deep: bool, jobs: int, delete_requested: bool, yes: bool, remote: str,
            output_format: str, repo: Path | None) -> None:
    """Find artifacts missing for a manifest, objects no manifest references (orphans), and with --deep
    objects whose content no longer matches its hash."""
    # imported when the command runs (commands/__init__.py)
    from ..repository import Exchange
    from ..storage.lease import leased

    exchange = Exchange.open(repo)
    bucket = storage_bucket(bucket_uri, None)
    bucket.require_exists()
    if delete_requested:  # deleting needs proof that this checkout's exchange owns the bucket
        from .. import git
        from ..ownership import exchange_identity, require_owner

        require_owner(bucket, exchange_identity(exchange.repo, remote, git.current_branch(exchange.repo)))
    # Deleting waits for the publish lease: an object a running `process` uploaded is not an orphan.
    with leased(bucket, "verify-storage --delete-orphans", enabled=delete_requested, log=LOG.warning):
        _audit_and_delete(exchange, bucket, deep, jobs, delete_requested, yes, remote, output_format)


def _audit_and_delete(exchange: Exchange, bucket: Bucket, deep: bool, jobs: int, delete_requested: bool,
                      yes: bool, remote: str, output_format: str) -> None:
    from ..catalog.storage_audit import audit_exchange_storage, deletable_orphans, delete_orphans
    from ..catalog.storage_report import audit_as_json, render_audit
    from ..manifests import load_manifests
    from ..provenance.keys import repository_keys

    if delete_requested:
        for name in bucket.remove_abandoned_uploads():
            LOG.warning(f"removed the partial upload {name}: the run that wrote it is gone")
    keys = repository_keys(exchange.root) if deep else []  # only --deep checks envelopes (and loads cryptography)
    audit = audit_exchange_storage(load_manifests(exchange.manifests_dir), bucket, deep=deep, keys=keys,
                                   workers=jobs)
    if delete_requested:
        # Read under the lease, after any run that published meanwhile has released it.
        from ..catalog.storage_audit import keep_referenced_elsewhere
        from ..process.references import published_references  # GitPython: only to delete

        published = published_references(exchange.repo, remote)
        if published is not None:
            for name in keep_referenced_elsewhere(audit, published.names, published.unreadable):
                LOG.warning(f"kept {name}: a manifest at {remote} ({published.commit[:12]}) references it; "
                            "this checkout is behind (git pull)")
    if output_format == "json":
        emit_json(audit_as_json(audit))
    else:
        render_audit(audit, sys.stdout)
    if delete_requested and audit.orphans:
        orphans = deletable_orphans(audit)
        if not yes:
            click.confirm(f"delete {len(orphans)} orphan object(s) from {bucket.uri}?", abort=True, err=True)
        deleted, kept = delete_orphans(bucket, orphans)
        LOG.warning(f"deleted {len(deleted)} orphan(s)")
        for name in kept:
            LOG.warning(f"kept {name}: it was replaced since the audit")
        audit.orphans = [o for o in audit.orphans if o.name not in deleted]
    exit_with_findings(audit.ok)
