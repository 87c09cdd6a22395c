"""`exchange process`: the master CI job."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..process.plan import ValidationFailed
from ..process.report import outcome_as_json, render_outcome
from ..process.run import ProcessOptions, process_exchange
from ..progress import progress_for
from ..repository import Exchange
from ..validation.reporter import render_rich, render_text
from .options import export_options, export_options_from, storage_bucket


@click.command("process")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), help="The exchange repository [default: the one around the current directory].")
@click.option("--since", metavar="REV", help="Process specs changed since REV instead of since .sentinel.")
@click.option("--bucket", "bucket_uri", metavar="URI", help="gs://bucket[/prefix] or file:///path [env: EXCHANGE_BUCKET_URI].")
@click.option("--download-url", metavar="URL", help="Public URL prefix of the bucket [env: EXCHANGE_DOWNLOAD_URL; default: derived from the bucket].")
@click.option("--remote", envvar="GIT_REMOTE", default="origin", show_default=True, help="Git remote to push to [env: GIT_REMOTE].")
@export_options
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Export and upload N specs at once.")
@click.option("--retries", type=click.IntRange(0, 20), default=0, show_default=True, help="On a non-fast-forward push, replay and push again up to N times.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress output.")
def command(repo: Path | None, since: str | None, bucket_uri: str | None, download_url: str | None, remote: str,
            jobs: int, retries: int, dry_run: bool, output_format: str, quiet: bool, **export_flags) -> None:
    """Export, upload and publish every spec changed since .sentinel, then push; undo everything on failure."""
    exchange = Exchange.open(repo)
    bucket = storage_bucket(bucket_uri, download_url)
    options = ProcessOptions(export=export_options_from(**export_flags), bucket=bucket, remote=remote, since=since,
                             jobs=jobs, retries=retries, dry_run=dry_run)
    progress = progress_for(sys.stderr, quiet)
    try:
        outcome = process_exchange(exchange, options, progress=progress, log=lambda line: click.echo(line, err=True))
    except ValidationFailed as failure:
        (render_rich if sys.stdout.isatty() else render_text)(failure.report, sys.stdout)
        raise
    if output_format == "json":
        click.echo(json.dumps(outcome_as_json(outcome), indent=2))
    else:
        render_outcome(outcome, sys.stdout, dry_run=dry_run)
