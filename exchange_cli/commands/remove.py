"""`exchange remove`: an entry's spec and manifests in one commit; with --purge, its bucket objects."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..quoting import printable
from .catalog_options import bucket_option, open_catalog, repo_option
from .conventions import emit_json, format_option, remote_option, verbosity_options, yes_option
from .options import storage_bucket


@click.command("remove")
@click.argument("reference", metavar="[ORG/]NAME[@VERSION]")
@click.option("--version", hidden=True, help="The same as ORG/NAME@VERSION.")
@click.option("--purge", is_flag=True, help="Also delete their rootfs objects from the bucket.")
@bucket_option
@yes_option
@remote_option
@repo_option
@format_option("text", "json", default="text")
@verbosity_options
def command(reference: str, version: str | None, purge: bool, bucket_uri: str | None, yes: bool, remote: str,
            repo: Path | None, output_format: str) -> None:
    """Remove exactly one gear or boutique, or with @VERSION one version of it, named by ORG/NAME or
    ORG/FILE-STEM (never another name that merely starts the same): its spec and manifests, in one commit."""
    # imported when the command runs (commands/__init__.py)
    from .. import git
    from ..catalog.reference import EntryReference, resolve
    from ..catalog.storage_audit import require_every_manifest_read
    from ..contrib.remove import (
        PurgeOutcome,
        apply_removal,
        plan_removal,
        publish_removal,
        purge_objects,
        still_published,
    )
    from ..ownership import exchange_identity, require_owner

    parsed = EntryReference.parse(reference)
    exchange, catalog = open_catalog(repo)
    resolved = resolve(catalog, parsed)
    if resolved.version and version and resolved.version != version:
        raise UsageError(f"{reference} and --version {version} name different versions")
    removal = plan_removal(exchange, catalog, resolved.entry, version or resolved.version)
    if purge:
        require_every_manifest_read(catalog.scan.problems)
    bucket = storage_bucket(bucket_uri, None) if purge else None
    if bucket is not None:  # deleting needs proof that this exchange owns the bucket, and a remote to push to
        require_owner(bucket, exchange_identity(exchange.repo, remote, git.current_branch(exchange.repo)))
    if not yes:  # every command that deletes asks, unless -y (its help says "without asking")
        purging = f", then delete {len(removal.objects)} object(s) from {bucket.uri}" if bucket and removal.objects else ""
        click.confirm(printable(f"remove {len(removal.paths)} file(s) of {removal.entry.ref} ({', '.join(removal.paths)}) "
                                f"and commit{purging}?"), abort=True, err=True)
    commit = apply_removal(exchange, removal)
    purged = PurgeOutcome((), ())
    if bucket is not None:
        if commit is not None:
            publish_removal(exchange, remote)  # the removal is on the remote before any object goes
        kept = still_published(exchange, remote, removal.objects)
        purged = purge_objects(bucket, tuple(name for name in removal.objects if name not in kept))
    if output_format == "json":
        emit_json({"removed": list(removal.paths), "updated": [removal.record[0]] if removal.record else [],
                   "commit": commit, "message": removal.message,
                   "deleted": list(purged.deleted), "already-absent": list(purged.absent)})
        return
    for path in removal.paths:
        click.echo(printable(f"removed {path}"))
    if removal.record is not None:
        click.echo(printable(f"updated {removal.record[0]} (the removed version's yank goes with it)"))
    click.echo(printable(f"committed {commit[:12]} {removal.message}") if commit else "nothing tracked by git; no commit")
    for name in purged.deleted:
        click.echo(printable(f"deleted {bucket.uri}/{name}"))  # type: ignore[union-attr]
    for name in purged.absent:
        click.echo(printable(f"already absent: {bucket.uri}/{name}"))  # type: ignore[union-attr]
