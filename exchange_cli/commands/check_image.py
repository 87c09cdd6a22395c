"""`exchange check-image SPEC`: check a spec's image against what the spec needs, from its rootfs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..conformance.check import (
    CONFORMANCE_RULES,
    check_spec_files,
    parse_skipped_checks,
)
from ..progress import progress_for
from ..validation.reporter import render, write_junit
from .options import export_options, export_options_from


@click.command("check-image")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@export_options
@click.option("--skip-check", "skip_checks", multiple=True, metavar="RULE",
              help=f"Report this check's failures as info only (repeatable): {', '.join(CONFORMANCE_RULES)}.")
@click.option("--format", "output_format", type=click.Choice(["auto", "text", "rich", "json"]), default="auto",
              show_default=True, help="auto: rich tables on a terminal, text lines otherwise.")
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JUnit report, one test case per spec.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def command(specs: tuple[Path, ...], skip_checks: tuple[str, ...], output_format: str, junit_xml: Path | None,
            quiet: bool, **option_values: Any) -> None:
    """Check each SPEC's image (a gear or a boutique) from its flattened rootfs, without a daemon or extracting.

    Gears: /flywheel/v0/ exists, /flywheel/v0/run is executable (unless the gear sets command), bash is on
    a standard path, an embedded /flywheel/v0/manifest.json matches. Boutiques: the command-line's
    executable exists. Both: the symlinks these depend on resolve inside the rootfs.
    """
    skipped = parse_skipped_checks(skip_checks)
    options = export_options_from(**option_values)
    with progress_for(sys.stderr, quiet) as progress:
        report = check_spec_files(specs, options, skipped=skipped, progress=progress)
    if junit_xml is not None:
        write_junit(report, junit_xml, suite_name="exchange check-image")
    render(report, output_format, sys.stdout)
    sys.exit(0 if report.ok else 1)
