"""`fanout`: an exchange of five gears on a remote, processed in shards on "machines" (clones, runs in
processes of their own) into the GCS emulator's bucket, then finalized.

`run_shards` starts the shards at once, each in a process of its own, as separate CI machines run them;
`run_shards_here` runs them one after another in the test's process, for a test about what finalize does
with their records and objects (the same clones, arguments and bucket, without the 0.4 s CPU each
`exchange process` costs to start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from tests.infra.gitrepo import ExchangeRepo, gears_on_a_remote, run_git

EXCHANGE = Path(sys.executable).with_name("exchange")
DOWNLOAD_URL = "https://downloads.example.org/rootfs"
GEARS = ("alpha", "bravo", "charlie", "delta", "echo")


@dataclass
class FanOut:
    tmp: Path
    repo: ExchangeRepo  # the finalize job's checkout
    remote: Path
    images: Path
    bucket_uri: str
    shard_dir: Path

    def clone(self, name: str, remote: Path | None = None) -> Path:
        path = self.tmp / name
        while path.exists():  # a second round of shards gets fresh checkouts, as on new machines
            path = path.with_name(path.name + "-again")
        run_git(self.tmp, "clone", "-q", str(remote or self.remote), str(path))
        return path

    def common_args(self, checkout: Path, cache: str, bucket_uri: str | None = None) -> list[str]:
        return ["process", "--repo", str(checkout), "--bucket", bucket_uri or self.bucket_uri, "--download-url",
                DOWNLOAD_URL, "--oci-layout", str(self.images), "--cache-dir", str(self.tmp / cache), "--quiet",
                "--report", str(self.tmp / "reports" / cache)]

    def shard(self, index: int, total: int, extra: tuple[str, ...], *,
              via_circleci_env: bool) -> tuple[list[str], dict[str, str]]:
        """A fresh clone's shard run: its arguments, and the environment it adds (CircleCI's node variables)."""
        checkout = self.clone(f"shard-{index}")
        args = [*self.common_args(checkout, f"cache-{index}"), "--shard-dir", str(self.shard_dir), *extra]
        if via_circleci_env:
            return args, {"CIRCLE_NODE_INDEX": str(index - 1), "CIRCLE_NODE_TOTAL": str(total)}
        return [*args, "--shard", f"{index}/{total}"], {}

    def start_shard(self, index: int, total: int = 3, *extra: str,
                    via_circleci_env: bool = False) -> subprocess.Popen[str]:
        args, env = self.shard(index, total, extra, via_circleci_env=via_circleci_env)
        return subprocess.Popen([str(EXCHANGE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **env})

    def run_shards(self, indexes: tuple[int, ...] = (1, 2, 3), *extra: str) -> None:
        running = [self.start_shard(index, 3, *extra, via_circleci_env=index == 3) for index in indexes]
        for process in running:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stdout + stderr

    def run_shards_here(self, indexes: tuple[int, ...] = (1, 2, 3), *extra: str) -> None:
        for index in indexes:
            args, env = self.shard(index, 3, extra, via_circleci_env=index == 3)
            result = CliRunner().invoke(cli, args, env=env)
            assert result.exit_code == 0, result.output

    def finalize(self, *extra: str) -> Result:
        args = [*self.common_args(self.repo.root, "cache-finalize"), "--finalize", str(self.shard_dir), *extra]
        return CliRunner().invoke(cli, args)

    def records(self) -> dict[str, dict]:
        return {path.name: json.loads(path.read_text()) for path in sorted(self.shard_dir.glob("shard-*.json"))}

    def remote_head(self) -> str:
        return run_git(self.remote, "rev-parse", "master")


@pytest.fixture
def fanout(exchange_repo: ExchangeRepo, gcs_bucket_uri: str, tmp_path: Path) -> FanOut:
    remote, images = gears_on_a_remote(exchange_repo, tmp_path, GEARS)
    return FanOut(tmp_path, exchange_repo, remote, images, gcs_bucket_uri, tmp_path / "workspace" / "shards")
