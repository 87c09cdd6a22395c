"""`exchange process`: the master CI job, on one machine or fanned out over several."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExchangeError, UsageError, redact
from ..logs import logger
from ..process.shards import CIRCLE_INDEX_ENV, CIRCLE_TOTAL_ENV, Shard
from ..storage import DEFAULT_WAIT_SECONDS, WAIT_ENV
from .conventions import (
    command_progress,
    emit_json,
    format_option,
    jobs_option,
    remote_option,
    repo_option,
    verbosity_options,
)
from .options import allow_untested_squashfs_option, export_options, export_options_from, storage_bucket

if TYPE_CHECKING:
    from ..repository import Exchange

LOG = logger("process")

REPORT_DIR_ENV = "EXCHANGE_REPORT_DIR"
DIRECTORY = click.Path(file_okay=False, path_type=Path)


@click.command("process")
@repo_option
@click.option("--since", metavar="REV", help="Process specs changed since REV instead of since .sentinel.")
@click.option("--bucket", "bucket_uri", metavar="URI", help="gs://bucket[/prefix] or file:///path [env: EXCHANGE_BUCKET_URI].")
@click.option("--download-url", metavar="URL", help="Public URL prefix of the bucket [env: EXCHANGE_DOWNLOAD_URL; default: derived from the bucket].")
@remote_option
@export_options
@allow_untested_squashfs_option
@jobs_option("Check, export and upload", default=1)
@click.option("--retries", type=click.IntRange(0, 20), default=0, show_default=True, help="On a non-fast-forward push, replay and push again up to N times.")
@click.option("--skip-check", "skip_checks", multiple=True, metavar="RULE", help="Let images that fail this conformance check (a rootfs-* rule id) through; manifests record it (repeatable).")
@click.option("--mirror-registry", metavar="HOST/PATH", help="Copy each processed image to HOST/PATH/<org>-<name>:<version> and record it; custom.flywheel.beta_exchange gears are delivered as that image.")
@click.option("--shard", "shard_text", metavar="I/N", help=f"Fan-out: export and upload only share I of N (from 1) and record it in --shard-dir; no git changes [default with --shard-dir: {CIRCLE_INDEX_ENV}+1/{CIRCLE_TOTAL_ENV}].")
@click.option("--shard-dir", type=DIRECTORY, help="Where a shard writes its record (shard-I-of-N.json) for --finalize.")
@click.option("--finalize", "finalize_dir", type=DIRECTORY, help="Fan-in: check the shard records in DIR against the bucket, then write manifests, commit and push; roll back every shard's objects on failure.")
@click.option("--sign-key", metavar="PATH|gcpkms://…", help="Sign each artifact's provenance (in-toto/SLSA, DSSE) with this key: a PEM file or a Cloud KMS key version [env: EXCHANGE_SIGNING_KEY, base64 PEM or gcpkms://]. Its public key must be in .exchange/keys/.")
@click.option("--report", "report_dir", type=DIRECTORY, envvar=REPORT_DIR_ENV, help="Write the run report (JSON and Markdown) here [env: EXCHANGE_REPORT_DIR; default: $XDG_STATE_HOME/exchange/reports, else .git/exchange/reports in the exchange]; a dry run writes none.")
@click.option("--lease-wait", type=click.FloatRange(0), envvar=WAIT_ENV, default=DEFAULT_WAIT_SECONDS, show_default=True, help="Seconds to wait for another run's lease on the bucket before giving up [env: EXCHANGE_LEASE_WAIT].")
@click.option("--publish-index", metavar="BRANCH", help="After a successful run, publish the catalog (exchange.json, the old pipeline's shape) to BRANCH; a failure is reported, never rolls back the run, and the next run retries.")
@click.option("--dry-run", is_flag=True, help="Print the plan (a shard's share with --shard); change nothing.")
@format_option("text", "json", default="text")
@verbosity_options
def command(repo: Path | None, since: str | None, bucket_uri: str | None, download_url: str | None, remote: str,
            jobs: int, retries: int, shard_text: str | None, shard_dir: Path | None, finalize_dir: Path | None,
            report_dir: Path | None, lease_wait: float, dry_run: bool, output_format: str, skip_checks: tuple[str, ...],
            mirror_registry: str | None, publish_index: str | None, sign_key: str | None,
            allow_untested_squashfs_tools: bool, **export_flags: Any) -> None:
    """Export, upload and publish every spec changed since .sentinel, then push; undo everything on failure."""
    try:
        run_command(repo, since, bucket_uri, download_url, remote, jobs, retries, shard_text, shard_dir, finalize_dir,
                    report_dir, lease_wait, dry_run, output_format, skip_checks, mirror_registry, publish_index,
                    sign_key, export_flags, allow_untested_squashfs_tools=allow_untested_squashfs_tools)
    except ExchangeError as error:
        if output_format == "json":  # JSON on every path: a tool reading stdout always gets a document
            emit_json(failure_as_json(error))
        raise


def failure_as_json(error: ExchangeError) -> dict[str, Any]:
    from ..process.plan import ValidationFailed
    from ..validation.reporter import report_as_json

    document: dict[str, Any] = {"ok": False, "error": redact(str(error))}
    if isinstance(error, ValidationFailed):
        document["validation"] = report_as_json(error.report)
    return document


def run_command(repo: Path | None, since: str | None, bucket_uri: str | None, download_url: str | None, remote: str,
                jobs: int, retries: int, shard_text: str | None, shard_dir: Path | None, finalize_dir: Path | None,
                report_dir: Path | None, lease_wait: float, dry_run: bool, output_format: str,
                skip_checks: tuple[str, ...], mirror_registry: str | None, publish_index: str | None,
                sign_key: str | None, export_flags: dict[str, Any], *,
                allow_untested_squashfs_tools: bool = False) -> None:
    # the pipeline, imported when the command runs (commands/__init__.py)
    from ..process.delivery.settings import DeliverySettings
    from ..process.plan import ValidationFailed
    from ..process.report import outcome_as_json, render_outcome
    from ..process.run import ProcessOptions, process_exchange
    from ..process.run_report import run_label, run_reported
    from ..provenance.signers import open_signer
    from ..repository import Exchange
    from ..validation.reporter import render

    shard = chosen_shard(shard_text, shard_dir, finalize_dir, dry_run)
    exchange = Exchange.open(repo)
    if publish_index is not None:
        if shard is not None:
            raise UsageError("--publish-index belongs to the run that pushes (--finalize), not to a shard")
        from ..catalog.publish import check_branch

        check_branch(exchange.repo, publish_index, remote, option="--publish-index")
    bucket = storage_bucket(bucket_uri, download_url)
    options = ProcessOptions(export=export_options_from(**export_flags), bucket=bucket, remote=remote, since=since,
                             jobs=jobs, retries=retries, dry_run=dry_run, shard=shard, shard_dir=shard_dir,
                             finalize_dir=finalize_dir, delivery=DeliverySettings.from_options(skip_checks, mirror_registry),
                             lease_wait=lease_wait, publish_index=publish_index,
                             signer=open_signer(sign_key),
                             allow_untested_squashfs_tools=allow_untested_squashfs_tools)
    progress = command_progress()
    log = LOG.info
    reports = None if dry_run else report_dir or default_report_dir(exchange)
    try:
        outcome, _ = run_reported(
            lambda on_outcome, on_stage: process_exchange(exchange, options, progress=progress, log=log,
                                                          on_outcome=on_outcome, on_stage=on_stage),
            reports, run_label(shard, finalize_dir is not None), root=exchange.root, dry_run=dry_run)
    except ValidationFailed as failure:
        if output_format != "json":
            render(failure.report, "auto", sys.stdout)
        raise
    finally:
        progress.close()  # the rows stay on screen, once, above what follows
        if reports is not None:
            log(f"run report in {reports}")
    if output_format == "json":
        emit_json({"ok": True} | outcome_as_json(outcome))
    else:
        render_outcome(outcome, sys.stdout, dry_run=dry_run)


def default_report_dir(exchange: Exchange) -> Path:
    """Private to this user or this checkout, never a shared, world-writable place: $XDG_STATE_HOME, else
    the exchange's own git directory (which git never tracks)."""
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    if state and Path(state).is_absolute():
        return Path(state) / "exchange" / "reports"
    return Path(exchange.repo.git_dir) / "exchange" / "reports"


def chosen_shard(shard_text: str | None, shard_dir: Path | None, finalize_dir: Path | None, dry_run: bool) -> Shard | None:
    """--shard I/N, else CircleCI's node index and total when a shard directory is given; None: no fan-out."""
    if finalize_dir is not None and (shard_text or shard_dir):
        raise UsageError("--finalize publishes what the shards recorded: it cannot be a shard itself")
    if finalize_dir is not None and dry_run:
        raise UsageError("--finalize cannot be a dry run; try the shards with --dry-run")
    if shard_dir is None and shard_text is None:
        return None
    shard = Shard.parse(shard_text) if shard_text else Shard.from_circleci()
    if shard is None:
        raise UsageError(f"--shard-dir needs --shard I/N, or {CIRCLE_INDEX_ENV} and {CIRCLE_TOTAL_ENV} set")
    if shard_dir is None and not dry_run:
        raise UsageError("--shard needs --shard-dir: the finalize step publishes only what a shard recorded")
    return shard
