"""The click command behind `add-gear` and `add-boutique`: one factory, one kind each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..quoting import printable
from ..specs import SpecKind
from .conventions import emit_json, format_option, json_emitted, repo_option, verbosity_options

if TYPE_CHECKING:
    from ..contrib.add import AddOutcome


def make_add_command(kind: SpecKind) -> click.Command:
    where = "custom.gear-builder.image / custom.docker-image" if kind is SpecKind.GEAR else "container-image.image"

    @click.command(f"add-{kind.value}")
    @click.argument("source")
    @click.option("--org", help=f"The org directory under {kind.directory}/ [default: the org that already has it].")
    @click.option("--image", metavar="REF", help=f"The image to run [default: the spec's own {where}].")
    @click.option("--file", "spec_file", metavar="NAME",
                  help="The spec's file in a source directory or repository [default: "
                       + ("manifest.json]." if kind is SpecKind.GEAR else "the one Boutiques descriptor there]."))
    @click.option("--no-commit", is_flag=True, help="Write the file, do not commit it.")
    @repo_option
    @format_option("text", "json", default="text")
    @verbosity_options
    def command(source: str, org: str | None, image: str | None, spec_file: str | None, no_commit: bool,
                repo: Path | None, output_format: str) -> None:
        # imported when the command runs (commands/__init__.py)
        from ..contrib.add import SpecRejected, add_spec
        from ..contrib.source import read_source
        from ..repository import Exchange
        from ..validation.reporter import render

        exchange = Exchange.open(repo)
        try:
            outcome = add_spec(exchange, kind, read_source(source, kind, spec_file=spec_file), org=org, image=image,
                               commit=not no_commit)
        except SpecRejected as rejected:
            render(rejected.report, "json" if output_format == "json" else "auto", sys.stdout)
            json_emitted()  # a report, in the format asked for, is the command's document
            raise
        if output_format == "json":
            emit_json(outcome_as_json(outcome))
            return
        if not outcome.changed:
            click.echo(printable(f"{outcome.location.relative_path} is already exactly this spec; nothing to do"))
            return
        for line in outcome.diff.splitlines():
            click.echo(printable(line))  # the contributor's JSON, whose strings may hold C1 or bidi controls
        if outcome.commit:
            click.echo(printable(f"committed {outcome.commit[:12]} {outcome.message}"))
        else:
            click.echo(printable(f"wrote {outcome.location.relative_path} (not committed)"))

    command.help = (f"Add or update a {kind.value} from SOURCE: a JSON file, a source directory, or a git "
                    "URL[@REF]; validate it, write it and commit it.")
    return command


def outcome_as_json(outcome: AddOutcome) -> dict[str, Any]:
    return {"ok": True, "path": outcome.location.relative_path, "kind": outcome.location.kind.value,
            "org": outcome.location.org, "changed": outcome.changed, "commit": outcome.commit,
            "message": outcome.message, "diff": outcome.diff}
