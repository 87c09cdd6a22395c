"""`exchange keys init`: commit the exchange's public key so `exchange verify` and platforms can find it."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..provenance.keys import ECDSA_P256, ED25519
from ..provenance.signers import SIGNING_KEY_ENV
from .catalog_options import repo_option
from .conventions import emit_json, format_option, verbosity_options


@click.group("keys")
def command() -> None:
    """The exchange's signing keys."""


@command.command("init")
@click.option("--sign-key", metavar="PATH|gcpkms://…", help=f"The private key: a PEM file or a Cloud KMS key version [env: {SIGNING_KEY_ENV}, base64 PEM or gcpkms://].")
@click.option("--generate", "generate_path", type=click.Path(dir_okay=False, path_type=Path), help="Make a new private key at PATH (outside the repository, mode 0600) and use it.")
@click.option("--algorithm", type=click.Choice([ED25519, ECDSA_P256]), default=ED25519, show_default=True, help="For --generate.")
@click.option("--no-commit", is_flag=True, help="Write .exchange/keys/<key id>.pub but do not commit it.")
@repo_option
@format_option("text", "json", default="text")
@verbosity_options
def init(sign_key: str | None, generate_path: Path | None, algorithm: str, no_commit: bool, repo: Path | None,
         output_format: str) -> None:
    """Write the public half of the signing key to .exchange/keys/<key id>.pub and commit it."""
    # imported when the command runs (commands/__init__.py)
    from ..provenance.keyring import generate_key_file, init_keys
    from ..provenance.signers import open_signer
    from ..repository import Exchange

    exchange = Exchange.open(repo)
    if generate_path is not None and sign_key:
        raise UsageError("--generate makes a new key: it cannot be combined with --sign-key")
    signer = generate_key_file(generate_path, exchange, algorithm) if generate_path else open_signer(sign_key)
    if signer is None:
        raise UsageError(f"no signing key: pass --sign-key PATH|gcpkms://…, set {SIGNING_KEY_ENV}, or --generate PATH")
    done = init_keys(exchange, signer, commit=not no_commit, generated=generate_path)
    if output_format == "json":
        emit_json({"public-key": exchange.relative(done.path), "key-id": done.key.key_id,
                               "algorithm": done.key.algorithm, "written": done.written, "commit": done.commit,
                               "private-key": str(done.generated) if done.generated else None})
        return
    if done.generated is not None:
        click.echo(f"private key: {done.generated} (keep it secret: give it to CI as {SIGNING_KEY_ENV}=$(base64 -w0 {done.generated}))")
    state = "committed" if done.commit else ("written" if done.written else "already present")
    click.echo(f"public key:  {exchange.relative(done.path)} ({state})")
    click.echo(f"key id:      {done.key.key_id} ({done.key.algorithm})")
