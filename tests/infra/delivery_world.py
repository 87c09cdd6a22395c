"""`delivery_world`: `exchange process --source registry` with a mirror registry, over images a real dockerd
imported and pushed to the session's registry (`delivery_images`: acme/beta, acme/plain and acme/nobash)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from tests.infra.dockerd import Dockerd
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo
from tests.infra.registry import ALL_MANIFESTS, RegistryServer
from tests.layers import directory, file, symlink

RUN = b"#!/bin/bash\necho running\n"
# The files over busybox-local's, imported (a build's layers and history play no part here).
WITHOUT_BASH = [directory("flywheel"), directory("flywheel/v0"), file("flywheel/v0/run", RUN, mode=0o755)]
CONFORMING = [symlink("bin/bash", "busybox"), *WITHOUT_BASH]


@pytest.fixture(scope="module")
def delivery_images(dockerd: Dockerd, registry: RegistryServer) -> dict[str, str]:
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

    def process(self, *extra: str, mirror: bool = True) -> Result:
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
def delivery_world(exchange_repo: ExchangeRepo, tmp_path: Path, registry: RegistryServer,
                   delivery_images: dict[str, str],
                   monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    remote = init_repo(tmp_path / "remote.git", bare=True)
    exchange_repo.git("remote", "add", "origin", str(remote))
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    w = World(exchange_repo, remote, bucket, tmp_path / "cache", registry, f"{registry.host}/m{secrets.token_hex(4)}")
    w.add_gear("beta", delivery_images["beta"], beta=True)
    w.add_gear("plain", delivery_images["plain"])
    exchange_repo.commit("add gears")
    exchange_repo.git("push", "-q", "origin", "master")
    return w
