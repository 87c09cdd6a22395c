"""The click layer: parse options, call one function, render. Commands live in `commands/`."""

from __future__ import annotations

import importlib

import click

from . import __version__
from .errors import ExchangeError, describe_os_error

# name -> module under exchange_cli.commands exposing a click command called `command`.
# Imported lazily so `exchange validate` does not pay for the Docker or GCS client imports.
COMMANDS = {
    "validate": "validate",
    "invocation-schema": "invocation_schema",
    "validate-invocation": "validate_invocation",
    "export": "export",
    "check-image": "check_image",
    "process": "process",
    "history": "history",
    "demo": "demo",
    "add-gear": "add_gear",
    "add-boutique": "add_boutique",
    "list": "list",
    "show": "show",
    "fetch": "fetch",
    "verify-storage": "verify_storage",
    "remove": "remove",
    "inventory": "inventory",
    "index": "index",
}


class ExchangeGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = COMMANDS.get(name)
        if module_name is None:
            return None
        return importlib.import_module(f"exchange_cli.commands.{module_name}").command

    def invoke(self, ctx: click.Context) -> object:
        # Errors the user can act on become one line and an exit code, never a traceback.
        try:
            return super().invoke(ctx)
        except ExchangeError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except OSError as error:
            # The environment failed us (a full disk, a read-only place, a vanished file): name the path.
            click.echo(f"error: {describe_os_error(error)}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=ExchangeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="exchange")
def cli() -> None:
    """Run a gear exchange: validate specs, export rootfs tarballs, publish manifests."""


def main() -> None:
    cli(prog_name="exchange")
