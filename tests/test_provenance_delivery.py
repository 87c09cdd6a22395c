"""Signed provenance for images in a real dockerd, pushed to a real registry: an image-delivered
gear is attested by its digest too, and `exchange verify --image` asks the registry whether it still
serves the attested digest."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import requests
from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.infra.delivery_world import CONFORMING, World
from tests.infra.provenance import independent_verify
from tests.infra.registry import ALL_MANIFESTS


def verify(world: World, reference: str, *extra: str):
    return CliRunner().invoke(cli, ["verify", reference, "--repo", str(world.repo.root), "--format", "json", *extra])


def test_an_image_delivered_gear_is_signed_and_verified_by_its_digest(delivery_world: World, dockerd, tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "exchange.key"
    assert CliRunner().invoke(cli, ["keys", "init", "--repo", str(delivery_world.repo.root), "--generate",
                                    str(key_file)]).exit_code == 0
    # One more gear, on an image of its own, which the registry will stop serving.
    doomed = f"{delivery_world.registry.host}/acme/doomed-{secrets.token_hex(3)}:1.0.0"
    dockerd.import_tree(doomed, CONFORMING)
    dockerd.push(doomed)
    delivery_world.add_gear("doomed", doomed)
    delivery_world.repo.commit("a gear whose image will go")
    delivery_world.repo.git("push", "-q", "origin", "master")
    result = delivery_world.process("--sign-key", str(key_file))
    assert result.exit_code == 0, result.output
    beta = next(m for name, m in delivery_world.manifests().items() if name.startswith("acme-beta-sha256-"))["exchange"]
    envelope = delivery_world.bucket / Path(beta["attestation-url"]).name
    assert envelope.name == f"acme-beta-{beta['rootfs-hash'].replace(':', '-')}.intoto.jsonl"
    public = next((delivery_world.repo.root / ".exchange" / "keys").glob("*.pub")).read_bytes()
    statement = independent_verify(envelope.read_bytes(), public)
    assert statement["subject"] == [{"name": beta["rootfs-url"].removeprefix("docker://"),
                                     "digest": {"sha256": beta["rootfs-hash"].removeprefix("sha256:")}}]
    assert statement["predicate"]["buildDefinition"]["internalParameters"] == {"artifact": "image"}
    for name in ("beta", "plain", "doomed"):
        checked = verify(delivery_world, f"acme/{name}", "--image", "--insecure-registry", delivery_world.registry.host)
        assert checked.exit_code == 0, checked.output
        assert json.loads(checked.output)["checks"][-1]["check"] == "image"
    repository, _, _ = doomed.split("/", 1)[1].partition(":")
    digest = requests.head(f"{delivery_world.registry.url}/v2/{repository}/manifests/1.0.0",
                           headers={"Accept": ALL_MANIFESTS}).headers["Docker-Content-Digest"]
    deleted = requests.delete(f"{delivery_world.registry.url}/v2/{repository}/manifests/{digest}")
    assert deleted.status_code == 202, deleted.text
    assert verify(delivery_world, "acme/doomed").exit_code == 0, "without --image the registry is not asked"
    gone = verify(delivery_world, "acme/doomed", "--image", "--insecure-registry", delivery_world.registry.host)
    assert gone.exit_code == 1
    failure = json.loads(gone.output)["failure"]
    assert failure["check"] == "image" and failure["reason"] == \
        f"the registry no longer serves {delivery_world.registry.host}/{repository}@{digest}"
