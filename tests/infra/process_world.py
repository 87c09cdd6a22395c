"""`exchange process` against a work tree with a bare remote, two gears whose images are in an OCI layout,
and a local bucket directory: the `process_world` fixture and what tests do with it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from tests.infra.gitrepo import ExchangeRepo, gear_and_image, init_repo, run_git

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_SCHEMA = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())


@dataclass
class World:
    repo: ExchangeRepo
    remote: Path
    images: Path
    bucket: Path
    cache: Path

    def args(self, *extra: str) -> list[str]:
        return ["process", "--repo", str(self.repo.root), "--bucket", self.bucket.as_uri(), "--oci-layout",
                str(self.images), "--cache-dir", str(self.cache), "--quiet", *extra]

    def add_gear(self, org: str, name: str, version: str = "1.0.0", **changes) -> dict:
        gear, image = gear_and_image(org, name, version, **changes)
        build_demo_image(self.images, image, gear)
        self.repo.write(f"gears/{org}/{name}.json", gear)
        return gear

    def bucket_objects(self) -> dict[str, str]:
        return {p.name: hashlib.sha384(p.read_bytes()).hexdigest()
                for p in sorted(self.bucket.iterdir()) if p.is_file() and not p.name.startswith(".")}

    def remote_head(self) -> str:
        return run_git(self.remote, "rev-parse", "master")


def process(world: World, *extra: str) -> Result:
    return CliRunner().invoke(cli, world.args(*extra))


@pytest.fixture
def process_world(exchange_repo: ExchangeRepo, tmp_path: Path) -> World:
    remote = init_repo(tmp_path / "remote.git", bare=True)
    exchange_repo.git("remote", "add", "origin", str(remote))
    images, bucket = tmp_path / "images", tmp_path / "bucket"
    images.mkdir()
    bucket.mkdir()
    w = World(exchange_repo, remote, images, bucket, tmp_path / "cache")
    w.add_gear("acme", "hello")
    w.add_gear("acme", "other", "2.0.0")
    exchange_repo.commit("add gears")
    exchange_repo.git("push", "-q", "origin", "master")
    return w


def manifests(world: World) -> dict[str, dict]:
    return {p.relative_to(world.repo.root).as_posix(): json.loads(p.read_text())
            for p in sorted((world.repo.root / "manifests").glob("*/*.json"))}


def reject_pushes(remote: Path, script: str = "echo 'rejected by policy' >&2; exit 1") -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\n{script}\n")
    hook.chmod(0o755)


SBOM_KEYS = ("sbom-url", "sbom-sha256", "sbom-packages", "sbom-os")


def forget_sbom(world: World, name: str, changes: dict[str, str] | None = None) -> tuple[dict, bytes]:
    """Make acme/<name>'s manifest look published before SBOMs (`changes` to its exchange block besides),
    committed: its exchange block and SBOM as they were."""
    manifest = next((world.repo.root / "manifests" / "acme").glob(f"acme-{name}-*.json"))
    document = json.loads(manifest.read_text())
    before = dict(document["exchange"])
    stored = world.bucket / before["sbom-url"].rsplit("/", 1)[1]
    content = stored.read_bytes()
    stored.unlink()
    for key in SBOM_KEYS:
        document["exchange"].pop(key, None)
    document["exchange"].update(changes or {})
    manifest.write_text(json.dumps(document, indent=2) + "\n")
    world.repo.commit(f"{name} as published before SBOMs")
    return before, content
