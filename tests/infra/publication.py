"""A signed publication made by hand, as `process` writes one: a rootfs and its DSSE envelope in a
directory served as file:// URLs, and a manifest pointing at both; and the build facts it attests."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.provenance.attest import attest
from exchange_cli.provenance.signers import LocalKeySigner
from exchange_cli.provenance.statement import BuildFacts, ImageRef, SpecRef
from tests.infra.gitrepo import example_gear


def facts(**changes) -> BuildFacts:
    base = {
        "subject_name": "acme-hello-sha384-" + "a" * 96 + ".tgz",
        "subject_digests": {"sha384": "a" * 96, "sha256": "b" * 64},
        "artifact": "rootfs-tarball",
        "spec": SpecRef("gears/acme/hello.json", "gear", "acme", "hello", "1.0.0", "c" * 40),
        "image": ImageRef("registry.example.org/acme/hello:1.0.0",
                          "registry.example.org/acme/hello@sha256:" + "d" * 64,
                          "sha256:" + "d" * 64, "sha256:" + "e" * 64, "linux/amd64"),
        "source_commit": "f" * 40,
        "repository": "https://git.example.org/acme/exchange.git",
        "tool_versions": {"exchange-cli": "0.1.0", "isal": "1.9.1"},
        "compression": {"format": "gzip", "level": 1, "blockBytes": 1048576},
        "run_url": "https://circleci.example.org/gh/acme/exchange/42",
    }
    base.update(changes)
    return BuildFacts(**base)


@dataclass
class Publication:
    root: Path
    manifest: Path
    rootfs: Path
    envelope: Path
    key: Path
    signer: LocalKeySigner

    def verify(self, *args: str):
        return CliRunner().invoke(cli, ["verify", *args])


def publish(directory: Path, signer: LocalKeySigner, *, version: str = "1.0.0", content: bytes | None = None,
            commit: str = "f" * 40, image: ImageRef | None = None) -> Publication:
    """A rootfs, its signed envelope and a manifest that points at both, as `process` writes them;
    `image`: the image it attests (default: facts()'s)."""
    rootfs_bytes = content or os.urandom(4096)
    sha384, sha256 = hashlib.sha384(rootfs_bytes).hexdigest(), hashlib.sha256(rootfs_bytes).hexdigest()
    name = f"acme-hello-sha384-{sha384}.tgz"
    bucket = directory / "bucket"
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / name).write_bytes(rootfs_bytes)
    base = facts(**({"image": image} if image else {}))
    built: BuildFacts = replace(base, subject_name=name, subject_digests={"sha384": sha384, "sha256": sha256},
                                spec=replace(base.spec, version=version), source_commit=commit)
    attestation = attest(built, signer, name)
    (bucket / attestation.object_name).write_bytes(attestation.content)
    spec = example_gear(name="hello", version=version, custom={"gear-builder": {"image": base.image.reference}})
    manifest = {"gear": spec, "exchange": {
        "git-commit": commit, "rootfs-hash": f"sha384:{sha384}", "rootfs-url": (bucket / name).as_uri(),
        "rootfs-size": len(rootfs_bytes), "image": base.image.reference,
        "image-digest-reference": base.image.digest_reference, "image-config-digest": base.image.config_digest,
        "platform": "linux/amd64", "attestation-url": (bucket / attestation.object_name).as_uri(),
        "attestation-sha256": attestation.sha256}, "invocation-schema": {}}
    path = directory / "manifests" / "acme" / f"acme-hello-sha384-{sha384}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2))
    key = directory / "exchange.pub"
    key.write_bytes(signer.public_key.pem)
    return Publication(directory, path, bucket / name, bucket / attestation.object_name, key, signer)
