"""`exchange demo`: the whole master job on a throwaway exchange, with no cloud, daemon or network.

It makes a git repository with a bare remote, adds a gear whose image is an OCI layout built here,
commits the public half of a throwaway signing key, and runs `exchange process` into a bucket directory,
signing each artifact's provenance, exactly as CI would with a real bucket and the exchange's key.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import git
from .demo_image import build_demo_image
from .errors import UsageError
from .image.blobcache import BlobCache
from .image.model import DEFAULT_PLATFORM
from .image.resolve import ExportOptions
from .process.run import ProcessOptions, ProcessOutcome, process_exchange
from .progress import Progress
from .provenance.keys import ED25519, write_key
from .provenance.signers import LocalKeySigner, generate_private_key
from .repository import Exchange
from .storage.bucket import open_bucket

IMAGE = "registry.example.org/demo/hello-world:1.0.0"
GEAR = {
    "name": "hello-world",
    "label": "Hello World",
    "description": "Writes a greeting into the output directory.",
    "version": "1.0.0",
    "author": "Exchange Demo",
    "license": "MIT",
    "source": "https://example.org/exchange/hello-world",
    "url": "",
    "inputs": {},
    "config": {"name": {"type": "string", "default": "world", "description": "Who to greet."}},
    "custom": {"gear-builder": {"category": "utility", "image": IMAGE}},
}


@dataclass(frozen=True)
class DemoWorld:
    root: Path
    work_tree: Path
    remote: Path
    images: Path
    bucket: Path
    signing_key: Path  # the throwaway private key, outside the exchange's work tree

    @property
    def verify_command(self) -> str:
        return f"{_program()} verify demo/{GEAR['name']}@{GEAR['version']} --repo {shlex.quote(str(self.work_tree))}"


def _program() -> str:
    """How to run this exchange again: `exchange` when that name finds it, else the path it was started by
    (the README's first command runs `.venv/bin/exchange`, with no activated venv)."""
    invoked = Path(sys.argv[0])
    if invoked.name != "exchange":
        return "exchange"  # run from Python (tests, `python -m exchange_cli`)
    found = shutil.which("exchange")
    if found is not None and Path(found).resolve() == invoked.resolve():
        return "exchange"
    return shlex.quote(str(invoked))


def run_git(cwd: Path, *args: str) -> str:
    identity = ["-c", f"user.name={git.BOT_NAME}", "-c", f"user.email={git.BOT_EMAIL}"]
    return git.run_git([*identity, *args], cwd)


def make_world(root: Path) -> DemoWorld:
    if any(root.iterdir()):
        raise UsageError(f"{root} exists and is not empty; the demo makes its throwaway exchange in a new or "
                         "empty directory, so that nothing of yours is mixed in or overwritten")
    world = DemoWorld(root, root / "exchange", root / "remote.git", root / "images", root / "bucket",
                      root / "signing" / "demo-exchange.key")
    for path in (world.work_tree, world.images, world.bucket):
        path.mkdir(parents=True, exist_ok=False)
    git.run_git(["init", "-q", "--bare", "-b", "master", str(world.remote)])
    run_git(world.work_tree, "init", "-q", "-b", "master")
    run_git(world.work_tree, "remote", "add", "origin", str(world.remote))
    build_demo_image(world.images, IMAGE, GEAR)
    spec = world.work_tree / "gears" / "demo" / "hello-world.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps(GEAR, indent=4) + "\n")
    (world.work_tree / "manifests").mkdir()
    (world.work_tree / "manifests" / "README.md").write_text("Manifests written by exchange process.\n")
    write_key(world.work_tree, _throwaway_signer(world.signing_key).public_key)
    run_git(world.work_tree, "add", "-A")
    run_git(world.work_tree, "commit", "-q", "-m", "Add hello-world gear")
    run_git(world.work_tree, "push", "-q", "origin", "master")
    return world


def run_demo(root: Path, *, progress: Progress, log: Callable[[str], None]) -> tuple[DemoWorld, ProcessOutcome]:
    world = make_world(root)
    options = ProcessOptions(
        export=ExportOptions(platform=DEFAULT_PLATFORM, source="registry", insecure_registries=(),
                             cache=BlobCache(root / "cache"), oci_layout=world.images),
        bucket=open_bucket(world.bucket.as_uri()),
        signer=LocalKeySigner.from_pem(world.signing_key.read_bytes(), f"key file {world.signing_key}"),
    )
    return world, process_exchange(Exchange.open(world.work_tree), options, progress=progress, log=log)


def _throwaway_signer(path: Path) -> LocalKeySigner:
    """A new Ed25519 key for this demo only, owner-readable, beside (never inside) the exchange."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_private_key(ED25519)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    return LocalKeySigner.from_pem(pem, f"key file {path}")
