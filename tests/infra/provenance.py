"""Signed provenance as tests check it: an independent DSSE verifier (`cryptography` alone), the Cloud KMS
key name the stand-in serves, and `signed_process`, a process world whose exchange has a signing key."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from exchange_cli.cli import cli
from exchange_cli.provenance.signers import LocalKeySigner
from tests.infra.process_world import World

KMS_NAME = "projects/exchange/locations/global/keyRings/ci/cryptoKeys/provenance/cryptoKeyVersions/3"


def independent_verify(envelope_line: bytes, public_pem: bytes) -> dict:
    """DSSE checked with `cryptography` alone: decode, rebuild PAE by hand, verify; returns the statement."""
    envelope = json.loads(envelope_line)
    body = base64.b64decode(envelope["payload"])
    kind = envelope["payloadType"].encode()
    message = b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" " + str(len(body)).encode() + b" " + body
    key = serialization.load_pem_public_key(public_pem)
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, message)
    else:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    return json.loads(body)


@dataclass
class Signed:
    world: World
    key_file: Path  # the private key, outside the repository
    signer: LocalKeySigner

    def process(self, *extra: str, sign: bool = True) -> Result:
        args = self.world.args(*extra) + (["--sign-key", str(self.key_file)] if sign else [])
        return CliRunner().invoke(cli, args)

    def verify(self, target: str, *extra: str) -> Result:
        return CliRunner().invoke(cli, ["verify", target, "--repo", str(self.world.repo.root), *extra])

    def manifest(self, name: str) -> Path:
        found = sorted((self.world.repo.root / "manifests" / "acme").glob(f"acme-{name}-sha384-*.json"))
        assert len(found) == 1, found
        return found[0]

    def block(self, name: str) -> dict:
        return json.loads(self.manifest(name).read_text())["exchange"]

    def edit_block(self, name: str, **changes: str | int) -> None:
        path = self.manifest(name)
        document = json.loads(path.read_text())
        document["exchange"].update({key.replace("_", "-"): value for key, value in changes.items()})
        path.write_text(json.dumps(document, indent=2))

    def bucket_file(self, url: str) -> Path:
        return self.world.bucket / Path(url).name


@pytest.fixture
def signed_process(process_world: World, tmp_path: Path) -> Signed:
    key_file = tmp_path / "secrets" / "exchange.key"
    result = CliRunner().invoke(cli, ["keys", "init", "--repo", str(process_world.repo.root), "--generate",
                                      str(key_file), "--algorithm", "ecdsa-p256"])
    assert result.exit_code == 0, result.output
    process_world.repo.git("push", "-q", "origin", "master")
    return Signed(process_world, key_file, LocalKeySigner.from_pem(key_file.read_bytes(), "test"))
