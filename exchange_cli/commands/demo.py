"""`exchange demo`: run the master job end to end on a throwaway exchange."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from ..errors import writing
from ..logs import logger
from .conventions import command_progress, emit_json, format_option, verbosity_options


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to make the throwaway exchange [default: a new temporary directory, kept for inspection].")
@format_option("text", "json", default="text")
@verbosity_options
def command(directory: Path | None, output_format: str) -> None:
    """Make a throwaway exchange (git repo, bare remote, local bucket, locally built image) and process it."""
    # imported when the command runs (commands/__init__.py)
    from ..demo import run_demo
    from ..process.report import outcome_as_json, render_outcome

    root = directory or Path(tempfile.mkdtemp(prefix="exchange-demo-"))
    with writing(root, "the demo exchange"):
        root.mkdir(parents=True, exist_ok=True)
    with command_progress() as progress:
        world, outcome = run_demo(root, progress=progress, log=logger("demo").info)
    if output_format == "json":
        places = {"exchange": world.work_tree, "remote": world.remote, "bucket": world.bucket, "oci-layout": world.images}
        emit_json({"ok": True} | outcome_as_json(outcome) | {k: str(v) for k, v in places.items()})
        return
    render_outcome(outcome, sys.stdout, dry_run=False)
    click.echo(f"\nthe exchange:   {world.work_tree}\nits remote:     {world.remote}\n"
               f"the bucket:     {world.bucket}\nthe OCI layout: {world.images}\n"
               f"signing key:    {world.signing_key} (throwaway, made for this demo; its public half is in "
               f".exchange/keys/)\n\ncheck what was published, end to end:\n  {world.verify_command}")
