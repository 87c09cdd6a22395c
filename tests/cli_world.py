"""A small exchange every command can run against: a work tree with a bare remote, gears whose images
are in an OCI layout, a local bucket; optionally processed once (manifests, artifacts)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from tests.infra.gitrepo import example_gear, init_repo, run_git


def noise(size: int, seed: int) -> bytes:
    """Bytes gzip cannot shrink, so an image takes a moment to write."""
    return random.Random(seed).randbytes(size)


@dataclass
class CliWorld:
    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def remote(self) -> Path:
        return self.root / "remote.git"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def bucket(self) -> Path:
        return self.root / "bucket"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def image(self, name: str) -> str:
        return f"registry.example.org/acme/{name}:1.0.0"

    def spec_path(self, name: str) -> Path:
        return self.work / "gears" / "acme" / f"{name}.json"

    def source(self, name: str) -> list[str]:
        return ["--oci-layout", str(self.images), "--cache-dir", str(self.cache)]

    def process_args(self) -> list[str]:
        return ["process", "--repo", str(self.work), "--bucket", self.bucket.as_uri(), *self.source(""),
                "--report", str(self.root / "reports")]

    def add_gear_image(self, name: str, *, data_mib: int = 0) -> dict:
        gear = example_gear(name=name, version="1.0.0", custom={"gear-builder": {"image": self.image(name)}})
        data = {f"opt/{name}/data.bin": noise(data_mib << 20, len(name))} if data_mib else None
        build_demo_image(self.images, self.image(name), gear, data=data)
        return gear


def make_world(root: Path, names: tuple[str, ...], *, data_mib: int = 0, processed: bool = False) -> CliWorld:
    world = CliWorld(root)
    for directory in (world.images, world.bucket):
        directory.mkdir(parents=True)
    init_repo(world.remote, bare=True)
    init_repo(world.work)
    for name in names:
        gear = world.add_gear_image(name, data_mib=data_mib)
        world.spec_path(name).parent.mkdir(parents=True, exist_ok=True)
        world.spec_path(name).write_text(json.dumps(gear, indent=4) + "\n")
    run_git(world.work, "add", "-A")
    run_git(world.work, "commit", "-q", "-m", "gears")
    run_git(world.work, "remote", "add", "origin", str(world.remote))
    run_git(world.work, "push", "-q", "origin", "master")
    if processed:  # and signed, so that `exchange verify` has an envelope to check
        key = root / "signing.pem"
        result = CliRunner().invoke(cli, ["keys", "init", "--generate", str(key), "--repo", str(world.work), "-q"])
        assert result.exit_code == 0, result.output
        run_git(world.work, "push", "-q", "origin", "master")
        result = CliRunner().invoke(cli, [*world.process_args(), "--sign-key", str(key), "-q"])
        assert result.exit_code == 0, result.output
    return world


def exchange_command() -> list[str]:
    """`exchange` as a subprocess of this test's Python."""
    return [sys.executable, "-c", "from exchange_cli.cli import main; main()"]


def run_exchange(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*exchange_command(), *args], capture_output=True, text=True, timeout=300, check=False,
                          **kwargs)
