"""`exchange validate`: the branch CI job's check of every changed spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import UsageError, writing
from ..logs import logger
from .conventions import exit_with_findings, format_option, jobs_option, json_emitted, repo_option, verbosity_options

if TYPE_CHECKING:
    from ..repository import Exchange

LOG = logger("validate")


@click.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--all", "all_specs", is_flag=True, help="Check every spec under gears/ and boutiques/.")
@click.option("--since", metavar="REV", help="Check specs changed since REV instead of since .sentinel.")
@click.option("--base", metavar="REF", envvar="EXCHANGE_BASE",
              help="Judge this checkout as a change to the branch REF (the branch CI job: origin/master): check the "
                   "specs changed since the merge base, with REF's policy, manifests and sentinel, and fail every "
                   "control file the change touches (protected-path) [env: EXCHANGE_BASE].")
@click.option("--strict", is_flag=True, help="Every problem is an error, in specs unchanged since the base (or already processed) too; by default those are warnings: rules judge what a change introduces.")
@repo_option
@click.option("--check-images", is_flag=True, help="Also ask each image's registry whether the tag or digest exists (network).")
@click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST", help="Talk plain HTTP to this registry (repeatable).")
@jobs_option("With --check-images: ask registries about")
@format_option("auto", "text", "rich", "json", default="auto")
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JUnit report, one test case per spec.")
@verbosity_options
def command(paths: tuple[Path, ...], all_specs: bool, since: str | None, base: str | None, strict: bool,
            repo: Path | None,
            check_images: bool, insecure_registries: tuple[str, ...], jobs: int, output_format: str,
            junit_xml: Path | None) -> None:
    """Check gear and boutique specs: with PATHs those files, with --all every spec, with --base the change to
    that branch, else the specs changed since .sentinel."""
    # the checks, imported when the command runs (commands/__init__.py)
    from ..repository import Exchange
    from ..validation.reporter import render, write_junit
    from ..validation.run import (
        select_spec_paths,
        stray_specs,
        validate_change,
        validate_loose_files,
        validate_specs,
    )

    exchange = _exchange_or_none(repo) if paths and not (all_specs or since or base) else Exchange.open(repo)
    if exchange is None:  # a contributor's own file, outside any exchange
        LOG.info("not inside an exchange: checked against the schemas and the default policy (the rules on "
                 "places, names and versions need an exchange)")
        report = validate_loose_files(paths)
    elif base:
        if paths or all_specs or since:
            raise UsageError("--base judges the whole change; give it without PATHs, --all or --since")
        report = validate_change(exchange, base, check_images=check_images, insecure_registries=insecure_registries,
                                 jobs=jobs, strict=strict)
    else:
        selected = select_spec_paths(exchange, paths, all_specs=all_specs, since=since)
        report = validate_specs(exchange, selected, check_images=check_images,
                                insecure_registries=insecure_registries, jobs=jobs, strict=strict)
        if not paths:  # JSON files where no run looks: a misspelled folder is never silently green
            report.results += stray_specs(exchange, _changed_json(exchange, since, all_specs))
    render(report, output_format, sys.stdout)
    json_emitted()  # a report, in the format asked for, is the command's document
    if junit_xml is not None:
        with writing(junit_xml, "the JUnit report"):
            write_junit(report, junit_xml)
    exit_with_findings(report.ok)


def _exchange_or_none(repo: Path | None) -> Exchange | None:
    from ..git import NotARepository
    from ..repository import Exchange
    from ..validation.run import is_exchange

    try:
        exchange = Exchange.open(repo)
    except NotARepository:
        return None
    return exchange if is_exchange(exchange.root) else None


def _changed_json(exchange: Exchange, since: str | None, all_specs: bool) -> list[str] | None:
    """The JSON files a change since --since or the sentinel touched; None (every file) for --all or
    an exchange never processed."""
    from .. import git

    since = since or exchange.read_sentinel()
    if all_specs or since is None:
        return None
    commit = git.resolve_commit(exchange.checkout, since, what="--since")
    return git.changed_paths(exchange.checkout, commit, ["*.json"])
