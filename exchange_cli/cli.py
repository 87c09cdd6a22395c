"""The click layer: parse options, call one function, render. Commands live in `commands/`."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

import click

from . import __version__
from .errors import EXIT_STATUS, Category, ExchangeError, describe_os_error, redact
from .interrupts import exit_status, terminate_raises
from .machine import FORMAT_META, JSON_EMITTED_META
from .quoting import printable, printable_lines

# name -> (module under exchange_cli.commands exposing a click command called `command`, its summary).
# Imported lazily, and summarised here, so `exchange --help` imports no command (nor GitPython, jsonschema,
# requests, rich) and `exchange validate` does not pay for the Docker or GCS clients. A test keeps each
# summary equal to its command's own first sentence.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", (
        "Check gear and boutique specs: with PATHs those files, with --all every spec, with --base the "
        "change to that branch, else the specs changed since .sentinel.")),
    "invocation-schema": ("invocation_schema", "Print the invocation schema of a gear, a boutique, or a strongly-versioned manifest."),
    "validate-invocation": ("validate_invocation", "Validate INVOCATION (a job's inputs and config, JSON) against SPEC's invocation schema."),
    "export": ("export", "Export IMAGE's root filesystem, all layers applied, to a byte-reproducible .tgz; print its sha384."),
    "check-image": ("check_image", (
        "Check each SPEC's image (a gear or a boutique) from its flattened rootfs, without a daemon or "
        "extracting.")),
    "process": ("process", (
        "Export, upload and publish every spec changed since .sentinel, then push; undo everything on "
        "failure.")),
    "history": ("history", "List the commits that published manifests, newest first."),
    "demo": ("demo", "Make a throwaway exchange (git repo, bare remote, local bucket, locally built image) and process it."),
    "add-gear": ("add_gear", (
        "Add or update a gear from SOURCE: a JSON file, a source directory, or a git URL[@REF]; validate it, "
        "write it and commit it.")),
    "add-boutique": ("add_boutique", (
        "Add or update a boutique from SOURCE: a JSON file, a source directory, or a git URL[@REF]; validate "
        "it, write it and commit it.")),
    "list": ("list", "List every gear and boutique with its versions, newest first, and whether each is processed."),
    "show": ("show", "Show a processed version (default: the newest): image, digest, rootfs URL, hash, size, commit."),
    "fetch": ("fetch", (
        "Download the rootfs of a processed version (default: the newest) from its rootfs URL (http(s)://, "
        "gs://, file://), or from --bucket, verifying its hash as it arrives.")),
    "verify-storage": ("verify_storage", (
        "Find artifacts missing for a manifest, objects no manifest references (orphans), and with --deep "
        "objects whose content no longer matches its hash.")),
    "remove": ("remove", (
        "Remove exactly one gear or boutique, or with @VERSION one version of it, named by ORG/NAME or "
        "ORG/FILE-STEM (never another name that merely starts the same): its spec and manifests, in one "
        "commit.")),
    "inventory": ("inventory", (
        "One row per gear: name, label, latest version, image, api-key use, license, author, maintainer, "
        "source, url.")),
    "index": ("index", "Write the catalog: every gear and boutique with its versions, newest first."),
    "verify": ("verify", (
        "Verify a published version end to end: the rootfs hash against the manifest, the envelope's "
        "signature against the exchange's key, the statement's subject against the artifact, and its image "
        "digest and commit against the manifest.")),
    "keys": ("keys", "The exchange's signing keys."),
    "yank": ("yank", (
        "Yank a processed version: never chosen as the newest again, still fetchable and verifiable by its exact "
        "version with a warning; recorded in one commit (who, when, why), nothing deleted.")),
    "unyank": ("unyank", "Lift the yank of a version, in one commit: it can be chosen as the newest again."),
    "deprecate": ("deprecate", (
        "Deprecate a gear or boutique (every version stays usable; each use warns with the reason), in one "
        "commit that records who, when and why.")),
    "sbom": ("sbom", "Print the SBOM of a processed version (default: the newest): its packages, or the CycloneDX document."),
    "backfill-sbom": ("backfill_sbom", (
        "Make the SBOM of every processed version that has none (or of REFERENCE's), from its rootfs in the "
        "bucket.")),
    "packages": ("packages", (
        "List every processed version shipping a package matching NAME[SPEC] (openssl<3.0.13, numpy, "
        "pkg:pypi/torch).")),
    "init": ("init", (
        "Start a new exchange in DIRECTORY (default: here): layout, CI pipeline, policy, README, one commit.")),
}


# `exchange --help` lists the commands by who runs them.
SECTIONS = (
    ("Commands for CI", ("validate", "process", "check-image")),
    ("Commands for contributors and users", ("add-gear", "add-boutique", "validate-invocation", "invocation-schema",
                                             "list", "show", "fetch", "verify", "sbom", "packages")),
    ("Commands for maintainers", ("init", "export", "yank", "unyank", "deprecate", "remove", "verify-storage",
                                  "inventory", "index", "history", "keys", "backfill-sbom", "demo")),
)
UNEXPECTED = EXIT_STATUS[Category.DEFECT]


class ExchangeGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = {name for _, names in SECTIONS for name in names}
        sections = [*SECTIONS, ("Other commands", tuple(name for name in self.list_commands(ctx) if name not in listed))]
        for title, names in sections:
            rows = [(name, COMMANDS[name][1]) for name in names if name in COMMANDS]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == HELP:
            return _help_command
        if name not in COMMANDS:
            return None
        command: click.Command = importlib.import_module(f"exchange_cli.commands.{COMMANDS[name][0]}").command
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, [*COMMANDS, HELP], n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} (exchange --help lists them)")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        # Errors the user can act on become one line and an exit code, never a traceback.
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here, while it can still be handled
            return result
        except BrokenPipeError:
            # `exchange list | head`: the reader has what it wanted; stop quietly, with success.
            _discard_stdout()
            ctx.exit(0)
        except ExchangeError as error:
            # A remote URL may carry a token; a contributor's name may carry terminal controls.
            message = redact(str(error))
            click.echo(f"error: {printable_lines(message)}", err=True)
            _json_error(ctx, message, error.exit_code, error.category.value)
            ctx.exit(error.exit_code)
        except OSError as error:
            # The environment failed us (a full disk, a read-only place, a vanished file): name the path.
            click.echo(f"error: {printable(describe_os_error(error))}", err=True)
            status = EXIT_STATUS[Category.ENVIRONMENT]
            _json_error(ctx, describe_os_error(error), status, Category.ENVIRONMENT.value)
            ctx.exit(status)
        except KeyboardInterrupt as interrupt:
            click.echo(f"interrupted ({interrupt.args[0]})" if interrupt.args else "interrupted", err=True)
            _json_error(ctx, "interrupted", exit_status(interrupt), "interrupted")
            ctx.exit(exit_status(interrupt))
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors, --help, a declined prompt
        except Exception as error:  # noqa: BLE001 - a defect of ours: one line, not a traceback
            import logging
            import traceback

            from .logs import LOGGER_NAME

            if logging.getLogger(LOGGER_NAME).isEnabledFor(logging.DEBUG):
                traceback.print_exc()
            command = ctx.invoked_subcommand or "exchange"
            message = (f"exchange {__version__} {command}: unexpected {type(error).__name__}: "
                       f"{redact(str(error))[:300]}; this is a bug: please report it with the command, "
                       "this line and the output of -v (which shows the traceback)")
            click.echo(printable(f"error: {message}"), err=True)
            _json_error(ctx, message, UNEXPECTED, Category.DEFECT.value)
            ctx.exit(UNEXPECTED)


HELP = "help"


@click.command(HELP, hidden=True)
@click.argument("names", nargs=-1)
@click.pass_context
def _help_command(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Show the help of a command (exchange help validate), or of exchange itself."""
    group = ctx.parent.command if ctx.parent is not None else cli
    context = ctx.parent or ctx
    if not names:
        click.echo(group.get_help(context))
        return
    command = group.get_command(context, names[0])  # type: ignore[attr-defined]
    if command is None:
        group.resolve_command(context, list(names))  # type: ignore[attr-defined]
        return
    with click.Context(command, info_name=names[0], parent=context) as sub:
        click.echo(command.get_help(sub))


@click.group(cls=ExchangeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="exchange")
def cli() -> None:
    """Run a gear exchange: validate specs, export rootfs tarballs, publish manifests.

    `exchange help COMMAND` (or `exchange COMMAND --help`) shows what a command does and takes."""




def _json_error(ctx: click.Context, message: str, status: int, kind: str) -> None:
    """A command asked for --format json prints one JSON document on every path: on a failure that the
    command did not report itself, this one (schemas/cli/error.schema.json)."""
    if ctx.meta.get(FORMAT_META) != "json" or ctx.meta.get(JSON_EMITTED_META):
        return
    import json

    document = {"ok": False, "error": {"message": message, "kind": kind,
                                       "exit-status": status}}
    with contextlib.suppress(OSError, ValueError):
        click.echo(json.dumps(document, indent=2))


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises nothing about the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file descriptor (a test runner's buffer)
        pass


def main() -> None:
    terminate_raises()
    cli(prog_name="exchange")
