"""`exchange check-image SPEC`: check a spec's image against what the spec needs, from its rootfs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..validation.problems import CONFORMANCE_RULES, parse_skipped_checks
from .conventions import (
    command_progress,
    exit_with_findings,
    format_option,
    jobs_option,
    json_emitted,
    verbosity_options,
)
from .options import export_options, export_options_from


@click.command("check-image")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@export_options
@click.option("--skip-check", "skip_checks", multiple=True, metavar="RULE",
              help=f"Report this check's failures as info only (repeatable): {', '.join(CONFORMANCE_RULES)}.")
@format_option("auto", "text", "rich", "json", default="auto")
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JUnit report, one test case per spec.")
@jobs_option("Check")
@verbosity_options
def command(specs: tuple[Path, ...], skip_checks: tuple[str, ...], output_format: str, junit_xml: Path | None,
            jobs: int, **option_values: Any) -> None:
    """Check each SPEC's image (a gear or a boutique) from its flattened rootfs, without a daemon or extracting.

    Gears: /flywheel/v0/ exists, /flywheel/v0/run is executable (unless the gear sets command), bash is on
    a standard path, an embedded /flywheel/v0/manifest.json matches. Boutiques: the command-line's
    executable exists. Both: the symlinks these depend on resolve inside the rootfs.
    """
    # imported when the command runs (commands/__init__.py)
    from ..conformance.check import check_spec_files
    from ..validation.reporter import render, write_junit

    skipped = parse_skipped_checks(skip_checks)
    options = export_options_from(**option_values)
    with command_progress() as progress:
        # Counted as they open: a spec whose image cannot be named opens no row. Each is only fetched.
        progress.expect(None, ("fetch",))
        report = check_spec_files(specs, options, skipped=skipped, progress=progress, workers=jobs)
    if junit_xml is not None:
        write_junit(report, junit_xml, suite_name="exchange check-image")
    render(report, output_format, sys.stdout)
    json_emitted()  # a report, in the format asked for, is the command's document
    exit_with_findings(report.ok)
