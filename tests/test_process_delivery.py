"""`exchange process` with conformance checks and a mirror registry: images in a real dockerd, real registry."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import requests
from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.infra.dockerd import Dockerd
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo
from tests.infra.registry import ALL_MANIFESTS, RegistryServer
from tests.layers import directory, file, symlink
from tests.test_process import MANIFEST_SCHEMA, reject_pushes

RUN = b"#!/bin/bash\necho running\n"
# The files over busybox-local's, imported (a build's layers and history play no part here).
WITHOUT_BASH = [directory("flywheel"), directory("flywheel/v0"), file("flywheel/v0/run", RUN, mode=0o755)]
CONFORMING = [symlink("bin/bash", "busybox"), *WITHOUT_BASH]


@pytest.fixture(scope="module")
def images(dockerd: Dockerd, registry: RegistryServer) -> dict[str, str]:
    """Pushed references: the same conforming image as acme/beta and acme/plain, and one without bash."""
    pushed = {}
    conforming = dockerd.import_tree("delivery/conforming:1", CONFORMING)
    without_bash = dockerd.import_tree("delivery/without-bash:1", WITHOUT_BASH)
    for name, image in (("beta", conforming), ("plain", conforming), ("nobash", without_bash)):
        reference = f"{registry.host}/acme/{name}:1.0.0"
        dockerd.client.images.get(image).tag(reference)
        dockerd.push(reference)
        pushed[name] = reference
    return pushed


@dataclass
class World:
    repo: ExchangeRepo
    remote: Path
    bucket: Path
    cache: Path
    registry: RegistryServer
    mirror: str

    def add_gear(self, name: str, image: str, *, beta: bool = False) -> None:
        custom = {"gear-builder": {"image": image}} | ({"flywheel": {"beta_exchange": True}} if beta else {})
        self.repo.write(f"gears/acme/{name}.json", example_gear(name=name, custom=custom))

    def process(self, *extra: str, mirror: bool = True):
        args = ["process", "--repo", str(self.repo.root), "--bucket", self.bucket.as_uri(), "--source", "registry",
                "--insecure-registry", self.registry.host, "--cache-dir", str(self.cache), "--quiet", *extra]
        return CliRunner().invoke(cli, args + (["--mirror-registry", self.mirror] if mirror else []))

    def manifests(self) -> dict[str, dict]:
        return {p.name: json.loads(p.read_text()) for p in sorted((self.repo.root / "manifests").glob("*/*.json"))}

    def tarballs(self) -> list[str]:
        return sorted(p.name for p in self.bucket.glob("*.tgz"))

    def mirrored_status(self, name: str, reference: str = "1.0.0") -> int:
        repository = self.mirror.split("/", 1)[1]
        return requests.head(f"{self.registry.url}/v2/{repository}/{name}/manifests/{reference}",
                             headers={"Accept": ALL_MANIFESTS}).status_code


@pytest.fixture
def world(exchange_repo: ExchangeRepo, tmp_path: Path, registry: RegistryServer, images: dict[str, str],
          monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    remote = init_repo(tmp_path / "remote.git", bare=True)
    exchange_repo.git("remote", "add", "origin", str(remote))
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    w = World(exchange_repo, remote, bucket, tmp_path / "cache", registry, f"{registry.host}/m{secrets.token_hex(4)}")
    w.add_gear("beta", images["beta"], beta=True)
    w.add_gear("plain", images["plain"])
    exchange_repo.commit("add gears")
    exchange_repo.git("push", "-q", "origin", "master")
    return w


def source_manifest(registry: RegistryServer, reference: str) -> requests.Response:
    repository, _, tag = reference.split("/", 1)[1].partition(":")
    response = requests.get(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": ALL_MANIFESTS})
    response.raise_for_status()
    return response


def test_beta_gear_is_delivered_as_its_image_and_others_are_mirrored(world: World, images: dict[str, str]) -> None:
    result = world.process()
    assert result.exit_code == 0, result.output
    source = source_manifest(world.registry, images["beta"])
    digest = source.headers["Docker-Content-Digest"]
    found = world.manifests()
    beta = found.pop(f"acme-beta-sha256-{digest.removeprefix('sha256:')}.json")
    ((plain_name, plain),) = found.items()
    assert plain_name.startswith("acme-plain-sha384-")
    assert beta["exchange"]["rootfs-hash"] == digest
    assert beta["exchange"]["rootfs-url"] == f"docker://{world.mirror}/acme-beta@{digest}"
    assert beta["exchange"]["mirrored-image"] == f"{world.mirror}/acme-beta@{digest}"
    assert plain["exchange"]["mirrored-image"] == f"{world.mirror}/acme-plain@{digest}", "the same image, its own repository"
    assert "skipped-checks" not in plain["exchange"]
    for document in (beta, plain):
        jsonschema.validate(document, MANIFEST_SCHEMA)
    assert world.tarballs() == [Path(plain["exchange"]["rootfs-url"]).name], "no tarball for the image-delivered gear"
    repository = world.mirror.split("/", 1)[1]
    mirrored = requests.get(f"{world.registry.url}/v2/{repository}/acme-beta/manifests/{digest}",
                            headers={"Accept": ALL_MANIFESTS})
    assert mirrored.content == source.content
    assert world.mirrored_status("acme-beta") == world.mirrored_status("acme-plain") == 200


def test_a_non_conforming_image_stops_the_run_before_any_upload(world: World, images: dict[str, str]) -> None:
    world.add_gear("nobash", images["nobash"])
    head = world.repo.commit("a gear without bash")
    result = world.process()
    assert result.exit_code == 1
    assert "gears/acme/nobash.json: error[rootfs-bash]: no executable bash" in result.output
    assert "failed the conformance checks; nothing was processed" in result.output
    assert world.tarballs() == [] and world.manifests() == {}
    assert world.repo.git("rev-parse", "HEAD") == head
    assert world.mirrored_status("acme-beta") == world.mirrored_status("acme-plain") == 404

    result = world.process("--skip-check", "rootfs-bash")
    assert result.exit_code == 0, result.output
    (nobash,) = [m for name, m in world.manifests().items() if name.startswith("acme-nobash-")]
    assert nobash["exchange"]["skipped-checks"] == ["rootfs-bash"]


def test_beta_gear_needs_a_mirror_registry(world: World) -> None:
    result = world.process(mirror=False)
    assert result.exit_code == 2
    assert "gears/acme/beta.json: custom.flywheel.beta_exchange gears are delivered as images; give --mirror-registry" \
        in result.output
    assert world.tarballs() == []


def test_failed_push_removes_the_mirrored_tags(world: World) -> None:
    reject_pushes(world.remote)
    start = world.repo.git("rev-parse", "HEAD")
    result = world.process()
    assert result.exit_code == 2
    assert "rejected by policy" in result.output
    for name in ("acme-beta", "acme-plain"):
        assert f"deleted docker://{world.mirror}/{name}:1.0.0" in result.output
        assert world.mirrored_status(name) == 404
    assert world.tarballs() == []
    assert world.repo.git("rev-parse", "HEAD") == start


def test_a_failed_finalize_removes_the_tags_its_shards_mirrored(world: World, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    first = world.process("--shard", "1/2", "--shard-dir", str(shards))
    assert first.exit_code == 0, first.output
    record = json.loads(next(shards.glob("shard-1-of-2.json")).read_text())
    mirrored = [tag["reference"] for tag in record["created-tags"]]
    assert mirrored, "shard 1 mirrored its share and recorded the tags"
    # Shard 2 never ran: finalize publishes nothing and undoes shard 1's work, tags included, without
    # being given --mirror-registry itself.
    result = world.process("--finalize", str(shards), mirror=False)
    assert result.exit_code == 1
    assert "shard-2-of-2" in result.output or "no shard recorded" in result.output
    for reference in mirrored:
        assert f"deleted docker://{reference}" in result.output
        name = reference.rsplit("/", 1)[1].split(":")[0]
        assert world.mirrored_status(name) == 404
    assert world.tarballs() == []


def test_an_image_delivered_version_on_the_same_image_keeps_the_older_version(world: World, images: dict[str, str]) -> None:
    """Manifests of image-delivered gears are named by the image digest: a new version of the gear on the
    same image gets the version-qualified name (see tests/test_shared_rootfs.py), the older one stays."""
    assert world.process().exit_code == 0
    digest = source_manifest(world.registry, images["beta"]).headers["Docker-Content-Digest"].removeprefix("sha256:")
    first = world.manifests()[f"acme-beta-sha256-{digest}.json"]
    custom = {"gear-builder": {"image": images["beta"]}, "flywheel": {"beta_exchange": True}}
    world.repo.write("gears/acme/beta.json", example_gear(name="beta", version="1.1.0", custom=custom))
    world.repo.commit("beta 1.1.0, the same image")
    result = world.process()
    assert result.exit_code == 0, result.output
    found = world.manifests()
    assert found[f"acme-beta-sha256-{digest}.json"] == first
    second = found[f"acme-beta@1.1.0-sha256-{digest}.json"]
    assert second["gear"]["version"] == "1.1.0"
    assert second["exchange"]["rootfs-hash"] == first["exchange"]["rootfs-hash"]
    assert world.mirrored_status("acme-beta", "1.0.0") == world.mirrored_status("acme-beta", "1.1.0") == 200
