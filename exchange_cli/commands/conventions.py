"""The options every command spells the same way: --format, -q/-v, --repo, --remote, -y, --jobs.

One definition each, so a name means one thing everywhere (`exchange --help` of any command reads
alike) and the table-driven test in tests/test_cli_conventions.py can check them all.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click

from ..errors import findings_status
from ..logs import Verbosity, configure
from ..machine import FORMAT_META, JSON_EMITTED_META

if TYPE_CHECKING:
    from ..display import LogProgress, RichProgress
    from ..progress import NullProgress

Command = TypeVar("Command", bound=Callable[..., Any])  # a click command function, as options decorate it

_VERBOSITY = "exchange.verbosity"


def _set_verbosity(wanted: Verbosity) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, param: click.Parameter, given: bool) -> None:
        current = ctx.meta.get(_VERBOSITY, Verbosity.NORMAL)
        if given:
            if current not in (Verbosity.NORMAL, wanted):
                raise click.UsageError("-q/--quiet and -v/--verbose exclude each other", ctx)
            current = ctx.meta[_VERBOSITY] = wanted
        configure(current)

    return callback


def verbosity_options(command: Command) -> Command:
    """-q/--quiet: no progress and no log lines, only the result and errors; -v/--verbose: debug lines."""
    command = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbosity(Verbosity.VERBOSE),
                           help="Also log each registry request, layer cache hit and git command (never credentials).")(command)
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_verbosity(Verbosity.QUIET),
                        help="No progress and no log lines: only the result and errors.")(command)


def verbosity() -> Verbosity:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_VERBOSITY, Verbosity.NORMAL) if ctx is not None else Verbosity.NORMAL


def command_progress() -> NullProgress | LogProgress | RichProgress:
    """Live rows on a terminal, periodic lines otherwise, nothing with -q."""
    from ..display import progress_for  # only a command that shows progress loads the displays

    return progress_for(sys.stderr, quiet=verbosity() is Verbosity.QUIET)


FORMAT_HELP = {
    "auto": "rich tables on a terminal, text lines otherwise",
    "rich": "tables",
    "text": "lines for people and log files",
    "json": "one JSON document (its schema is in schemas/cli/)",
    "csv": "comma-separated values, one row per item",
    "legacy": "the legacy exchange.json shape",
    "cyclonedx": "the CycloneDX 1.6 JSON document itself, the bytes the manifest pins",
}




def remember_format(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # The CLI's error handler prints a JSON error document when the command was asked for JSON.
    if value is not None and (value == "json" or FORMAT_META not in ctx.meta):
        ctx.meta[FORMAT_META] = value
    return value


def format_option(*choices: str, default: str,
                  aliases: dict[str, str] | None = None) -> Callable[[Command], Command]:
    """--format CHOICE (the function gets `output_format`); `aliases` maps hidden flags such as --json to a
    choice, kept for scripts written against older versions."""
    def decorate(command: Command) -> Command:
        for flag, choice in (aliases or {}).items():
            command = click.option(flag, "output_format", flag_value=choice, hidden=True, callback=remember_format,
                                   help=f"The same as --format {choice}.")(command)
        described = "; ".join(f"{choice}: {FORMAT_HELP[choice]}" for choice in choices)
        return click.option("--format", "output_format", type=click.Choice(choices), default=default,
                            show_default=True, callback=remember_format,
                            help=f"How to print the result ({described}).")(command)

    return decorate


def emit_json(document: object) -> None:
    """Print the command's one JSON document (and say so: the error handler then prints no other)."""
    json_emitted()
    click.echo(json.dumps(document, indent=2))


def json_emitted() -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[JSON_EMITTED_META] = True


def repo_option(command: Command) -> Command:
    return click.option("--repo", type=click.Path(file_okay=False, path_type=Path),
                        help="The exchange repository [default: the one around the current directory].")(command)


def remote_option(command: Command) -> Command:
    return click.option("--remote", envvar="GIT_REMOTE", default="origin", show_default=True,
                        help="The git remote to push to [env: GIT_REMOTE].")(command)


def yes_option(command: Command) -> Command:
    return click.option("-y", "--yes", is_flag=True, help="Do it without asking for confirmation.")(command)


def jobs_option(what: str, default: int = 4) -> Callable[[Command], Command]:
    return click.option("--jobs", type=click.IntRange(1, 64), default=default, show_default=True,
                        help=f"{what} N at once.")


def output_option(what: str) -> Callable[[Command], Command]:
    """-o/--output FILE: always a file ('-': standard output, the default), never a directory."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
                        help=f"Write {what} to this file [default: standard output].")


STDOUT = "-"


@contextlib.contextmanager
def file_or_stdout(output: Path) -> Iterator[Path]:
    """`-o -` means standard output, for every command that writes a file: the command writes a temporary
    file (checked, complete), which then goes to stdout; its report goes to stderr (`report_stream`)."""
    if str(output) != STDOUT:
        yield output
        return
    with tempfile.TemporaryDirectory(prefix="exchange-stdout-") as temp:
        path = Path(temp) / "output"
        yield path
        with path.open("rb") as written:
            shutil.copyfileobj(written, sys.stdout.buffer, 1024 * 1024)
        sys.stdout.buffer.flush()


def report_stream(output: Path | None) -> TextIO:
    """Where a command's report goes: stderr when stdout carries the file itself (`-o -`)."""
    return sys.stderr if output is not None and str(output) == STDOUT else sys.stdout


def exit_with_findings(ok: bool) -> NoReturn:
    """End a command that printed its own findings: the status comes from the one table in errors.py."""
    click.get_current_context().exit(findings_status(ok))
