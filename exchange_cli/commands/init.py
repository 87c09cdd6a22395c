"""`exchange init`: start an exchange of one's own."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..new_exchange import DEFAULT_TITLE, StartedExchange, start_exchange
from ..provenance.signers import SIGNING_KEY_ENV
from ..quoting import printable
from .conventions import emit_json, format_option, verbosity_options


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".", required=False)
@click.option("--title", default=DEFAULT_TITLE, show_default=True, help="The exchange's name, in its README and catalog.")
@click.option("--branch", default="master", show_default=True,
              help="The branch CI processes (a new repository starts on it; an existing one must be on it).")
@click.option("--sign", is_flag=True, help="Also make a signing key: its private half at --sign-key-file, its public "
                                           "half committed in .exchange/keys/.")
@click.option("--sign-key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where --sign writes the private key (mode 0600, outside the exchange) [default: "
                   "DIRECTORY-signing-key.pem beside DIRECTORY].")
@format_option("text", "json", default="text")
@verbosity_options
def command(directory: Path, title: str, branch: str, sign: bool, sign_key_file: Path | None,
            output_format: str) -> None:
    """Start a new exchange in DIRECTORY (default: here): layout, CI pipeline, policy, README, one commit."""
    root = directory.expanduser().resolve()
    key_path = None
    if sign or sign_key_file is not None:
        key_path = sign_key_file or root.with_name(f"{root.name}-signing-key.pem")
    started = start_exchange(root, branch=branch, title=title, sign_key=key_path)
    if output_format == "json":
        emit_json({"ok": True, "exchange": str(started.root), "branch": started.branch, "commit": started.commit,
                   "files": started.files, "tool-requirement": started.tool.line,
                   "tool-requirement-known": started.tool.known, "key-id": started.key_id,
                   "private-key": str(started.private_key) if started.private_key else None})
        return
    _render(started)


def _render(started: StartedExchange) -> None:
    shown = printable(str(started.root))
    click.echo(f"started the exchange {shown} on branch {started.branch} (commit {started.commit[:12]}):")
    for relative in started.files:
        click.echo(f"  {relative}")
    if not started.tool.known:
        click.echo(f"\nCI installs the tool with requirements/exchange.txt, which says {started.tool.line!r}: "
                   "init could not tell where this tool came from; put a requirement pip can install there.")
    if started.private_key is not None:
        quoted = shlex.quote(str(started.private_key))
        click.echo(f"\nsigning key {started.key_id}: private half {printable(str(started.private_key))} (keep it "
                   f"secret; give it to CI as {SIGNING_KEY_ENV}=$(base64 -w0 {quoted}))")
    click.echo(f"\nnext:\n  cd {shlex.quote(str(started.root))}\n  exchange add-gear path/to/manifest.json --org YOUR-ORG"
               "\n  exchange validate\n  set up CI: docs/ci.md in the exchange tool's repository")
