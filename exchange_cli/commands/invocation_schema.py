"""`exchange invocation-schema SPEC`: print the schema a job for SPEC must satisfy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..quoting import printable
from .conventions import format_option, verbosity_options


@click.command("invocation-schema")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--regenerate", is_flag=True, help="For a manifest: print the schema its embedded spec gives today, not the one it embeds.")
@format_option("json", default="json")
@verbosity_options
def command(spec: Path, regenerate: bool, output_format: str) -> None:
    """Print the invocation schema of a gear, a boutique, or a strongly-versioned manifest."""
    from ..invocation import choose_invocation_schema, read_spec_document  # when it runs (commands/__init__.py)

    chosen = choose_invocation_schema(read_spec_document(spec), regenerate=regenerate)
    if chosen.stale is not None:
        then = "this is the one its spec gives today (--regenerate)" if chosen.regenerated else \
            "printed as published; --regenerate prints today's"
        click.echo(printable(f"warning: {spec}: {chosen.stale}; {then}"), err=True)
    click.echo(json.dumps(chosen.schema, indent=2, sort_keys=True))
