"""The click layer: parse options, call one function, render. Commands live in `commands/`."""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import ExchangeError

# name -> module under exchange_cli.commands exposing a click command called `command`.
# Imported lazily so `exchange validate` does not pay for the Docker or GCS client imports.
COMMANDS = {
    "validate": "validate",
    "invocation-schema": "invocation_schema",
    "validate-invocation": "validate_invocation",
    "export": "export",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = COMMANDS.get(name)
        if module_name is None:
            return None
        module = importlib.import_module(f"exchange_cli.commands.{module_name}")
        return module.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="exchange")
def cli() -> None:
    """Run a gear exchange: validate specs, export rootfs tarballs, publish manifests."""


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except ExchangeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    # standalone_mode=False returns the command's return value; commands signal failure via exit codes.
