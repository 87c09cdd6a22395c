"""`exchange validate-invocation SPEC INVOCATION`: check a job's inputs and config before running it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ExchangeError
from ..quoting import printable
from .conventions import emit_json, exit_with_findings, format_option, json_emitted, verbosity_options


@click.command("validate-invocation")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("invocation", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--regenerate", is_flag=True, help="For a manifest: check against the schema its embedded spec gives today, not the one it embeds.")
@format_option("auto", "text", "rich", "json", default="auto")
@verbosity_options
def command(spec: Path, invocation: Path, regenerate: bool, output_format: str) -> None:
    """Validate INVOCATION (a job's inputs and config, JSON) against SPEC's invocation schema."""
    # imported when the command runs (commands/__init__.py)
    from ..invocation import choose_invocation_schema, invocation_problems, read_spec_document
    from ..specs import SpecFile, display_path
    from ..validation.checker import json_problems, place_problems
    from ..validation.problems import Report, SpecResult
    from ..validation.reporter import render

    try:
        chosen = choose_invocation_schema(read_spec_document(spec), regenerate=regenerate)
    except ExchangeError as error:
        if output_format == "json":  # a document on every path, for the programs that read it
            emit_json({"ok": False, "error": str(error), "results": []})
        raise
    if chosen.stale is not None:
        then = ("checking against the schema its spec gives today (--regenerate)" if chosen.regenerated
                else "checking against it as published; --regenerate checks against today's")
        click.echo(printable(f"warning: {spec}: {chosen.stale}; {then}"), err=True)
    schema = chosen.schema
    document = SpecFile.read(invocation, display_path=display_path(invocation), relative_path=None)
    result = SpecResult(document.display_path, kind="invocation")
    if not document.document.ok:
        result.problems.extend(json_problems(document.document))
    else:
        result.problems.extend(invocation_problems(schema, document.data))
    place_problems(document, result.problems)
    report = Report([result], noun="invocation")
    render(report, output_format, sys.stdout)
    json_emitted()  # a report, in the format asked for, is the command's document
    exit_with_findings(report.ok)
