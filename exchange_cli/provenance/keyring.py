"""`exchange keys init`: put the exchange's public key into the repository (`.exchange/keys/<key id>.pub`)
and commit it, optionally generating the private key first. The private key is written only outside
the work tree, owner-readable only: it must never reach git."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..commit_identity import commit_env
from ..committed import commit_changes
from ..errors import UsageError
from ..repository import Exchange
from .keys import ED25519, PublicKey, holds_key, key_file, write_key
from .signers import LocalKeySigner, Signer, generate_private_key


@dataclass(frozen=True)
class KeysInit:
    key: PublicKey
    path: Path  # the public key file in the repository
    written: bool
    commit: str | None  # None when nothing changed or --no-commit
    generated: Path | None = None  # the private key file made by --generate


def generate_key_file(path: Path, exchange: Exchange, algorithm: str = ED25519) -> LocalKeySigner:
    """Write a new private key to `path` (mode 0600, never overwriting, never inside the exchange)."""
    target = path.expanduser().resolve()
    if exchange.relative(target) is not None:
        raise UsageError(f"--generate {path}: inside the exchange repository; a private key must never be "
                         "committed, write it elsewhere (and keep it in your CI's secrets)")
    pem = generate_private_key(algorithm)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"--generate {path}: the file exists; choose a new path") from None
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    return LocalKeySigner.from_pem(pem, f"key file {target}")


def init_keys(exchange: Exchange, signer: Signer, *, commit: bool, generated: Path | None = None) -> KeysInit:
    key = signer.public_key
    if not commit:
        path, written = write_key(exchange.root, key)
        return KeysInit(key, path, written, None, generated)
    path = key_file(exchange.root, key)
    if holds_key(path, key):
        return KeysInit(key, path, False, None, generated)
    relative = exchange.relative(path)
    assert relative is not None
    made = commit_changes(exchange.repo, exchange.root, {relative: key.pem},
                          f"Add the exchange's signing key {key.short_id}", commit_env(exchange.repo))
    return KeysInit(key, path, True, made, generated)
