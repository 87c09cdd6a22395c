"""`exchange invocation-schema SPEC`: print the schema a job for SPEC must satisfy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..invocation import invocation_schema, read_spec_document
from .conventions import format_option, verbosity_options


@click.command("invocation-schema")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_option("json", default="json")
@verbosity_options
def command(spec: Path, output_format: str) -> None:
    """Print the invocation schema of a gear, a boutique, or a strongly-versioned manifest."""
    click.echo(json.dumps(invocation_schema(read_spec_document(spec)), indent=2, sort_keys=True))
