"""Stages for real `exchange process` runs in processes of their own, on one remote and one bucket: clones,
runs started and held at the remote's pre-receive hook until released (`Stage`), and the fixtures
`local_stage`, `big_stage` (an incompressible layer, so export and upload take a while) and `gcs_stage`."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange_cli.demo_image import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, add_to_index, descriptor, write_blob
from exchange_cli.ownership import OWNER_RECORD
from tests.infra.gcs import gcs_objects
from tests.infra.gitrepo import ExchangeRepo, gears_on_a_remote, run_git

EXCHANGE = Path(sys.executable).with_name("exchange")
GEARS = ("hello", "other")
DEADLINE = 180.0
# Big enough (incompressible) that export and upload take long enough to be caught in the act.
BIG_LAYER_BYTES = 48 * 1024 * 1024
# Holds the first push in its pre-receive hook until the test creates the file `release`.
HOLD_FIRST_PUSH = """#!/bin/sh
if mkdir "{gates}/held" 2>/dev/null; then
  echo $$ > "{gates}/held/pid"
  while [ ! -e "{gates}/release" ]; do sleep 0.05; done
fi
exit 0
"""


@dataclass
class Stage:
    tmp: Path
    remote: Path
    images: Path
    bucket_uri: str
    gates: Path
    tmpdir: Path  # the runs' TMPDIR: where their work directories are made
    objects: Callable[[], dict[str, bytes]]  # the whole bucket, control objects and partial uploads included

    def clone(self, name: str) -> Path:
        path = self.tmp / name
        run_git(self.tmp, "clone", "-q", str(self.remote), str(path))
        run_git(path, "config", "user.name", "Exchange Test")
        run_git(path, "config", "user.email", "test@exchange.invalid")
        return path

    def start(self, checkout: Path, *extra: str, terminal_group: bool = False) -> subprocess.Popen[str]:
        """`terminal_group`: the run leads a process group of its own, as a shell's foreground job does, so a
        test can send the terminal's Ctrl-C to the whole group (os.killpg)."""
        args = [str(EXCHANGE), "process", "--repo", str(checkout), "--bucket", self.bucket_uri, "--oci-layout",
                str(self.images), "--cache-dir", str(self.tmp / f"cache-{checkout.name}"), "--quiet", *extra]
        log = (self.tmp / f"{checkout.name}.log").open("a")
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "TMPDIR": str(self.tmpdir)}, process_group=0 if terminal_group else None)

    def log(self, checkout: Path) -> str:
        path = self.tmp / f"{checkout.name}.log"
        return path.read_text() if path.exists() else ""

    def start_held(self, name: str, *extra: str, terminal_group: bool = False) -> tuple[Path, subprocess.Popen[str]]:
        """A run in a fresh clone, held in its push (the first push to the remote) until release_push."""
        self.hold_first_push()
        checkout = self.clone(name)
        run = self.start(checkout, *extra, terminal_group=terminal_group)
        wait_for(self.push_is_held, f"{name} is pushing", running=run)
        return checkout, run

    def hold_first_push(self) -> None:
        hook = self.remote / "hooks" / "pre-receive"
        hook.write_text(HOLD_FIRST_PUSH.format(gates=self.gates))
        hook.chmod(0o755)

    def release_push(self) -> None:
        (self.gates / "release").touch()

    def push_is_held(self) -> bool:
        return (self.gates / "held" / "pid").is_file()

    def remote_head(self) -> str:
        return run_git(self.remote, "rev-parse", "master")


def finish(process: subprocess.Popen[str], stage: Stage, checkout: Path) -> int:
    try:
        return process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{checkout.name} did not finish:\n{stage.log(checkout)}")


def wait_for(condition: Callable[[], bool], what: str, *, running: subprocess.Popen[str] | None = None,
             poll: float = 0.05) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        assert running is None or running.poll() is None, f"the run ended before {what}"
        time.sleep(poll)


def local_objects(root: Path) -> Callable[[], dict[str, bytes]]:
    """Every file in a local bucket but the sha384 sidecars, the (always empty) control lock file and the
    ownership record (written once, kept by design)."""
    def read() -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and ".exchange-sha384" not in p.parts
                and p.name not in (".exchange-control.lock", OWNER_RECORD)}
    return read


def add_big_layer(images: Path, reference: str, size: int) -> None:
    """Give the image another layer with `size` random bytes, so exporting and uploading it take a while."""
    index = json.loads((images / "index.json").read_text())
    (entry,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == reference]
    manifest = json.loads(_blob(images, entry["digest"]))
    config = json.loads(_blob(images, manifest["config"]["digest"]))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("opt/payload.bin")
        info.size, info.mtime = size, 1_600_000_000
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    tar_bytes = buffer.getvalue()
    compressed = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
    manifest["layers"].append(descriptor(OCI_LAYER_GZIP, write_blob(images, compressed), len(compressed)))
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest["config"] = descriptor(OCI_CONFIG, write_blob(images, config_bytes), len(config_bytes))
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    add_to_index(images, descriptor(OCI_MANIFEST, write_blob(images, manifest_bytes), len(manifest_bytes),
                                    annotations=entry["annotations"], platform=entry["platform"]))


def _blob(images: Path, digest: str) -> bytes:
    return (images / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def make_stage(exchange_repo: ExchangeRepo, tmp_path: Path, bucket_uri: str,
               objects: Callable[[], dict[str, bytes]], *, big: bool = False) -> Stage:
    big_layer = (lambda images, image: add_big_layer(images, image, BIG_LAYER_BYTES)) if big else None
    remote, images = gears_on_a_remote(exchange_repo, tmp_path, GEARS, *([big_layer] if big_layer else []))
    (tmp_path / "gates").mkdir()
    (tmp_path / "tmpdir").mkdir()
    return Stage(tmp_path, remote, images, bucket_uri, tmp_path / "gates", tmp_path / "tmpdir", objects)


@pytest.fixture
def local_stage(exchange_repo: ExchangeRepo, tmp_path: Path) -> Stage:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    return make_stage(exchange_repo, tmp_path, bucket.as_uri(), local_objects(bucket))


@pytest.fixture
def big_stage(exchange_repo: ExchangeRepo, tmp_path: Path) -> Stage:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    return make_stage(exchange_repo, tmp_path, bucket.as_uri(), local_objects(bucket), big=True)


@pytest.fixture
def gcs_stage(exchange_repo: ExchangeRepo, tmp_path: Path, gcs_bucket_uri: str) -> Stage:
    return make_stage(exchange_repo, tmp_path, gcs_bucket_uri, lambda: gcs_objects(gcs_bucket_uri))
