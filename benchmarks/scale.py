"""Benchmark scaling `exchange process` out: 8 specs with --jobs 1, with --jobs 4, and as 4 shards in parallel.

    .venv/bin/python benchmarks/scale.py                    # 8 images of about 48 MB each
    .venv/bin/python benchmarks/scale.py --mb 200 --specs 8 --shards 4

It starts its own docker-registry (tests/infra/registry.py), pushes SPECS images of different sizes
(seeded content, half random and half text, so gzip cannot cheat) with `push_image`, and then, for
each way of running, makes a fresh exchange (a git repository with a bare remote) whose gears name
those images, an empty bucket directory and a cold layer cache, and times the whole job:

1. `exchange process --jobs 1`;
2. `exchange process --jobs 4`;
3. SHARDS `exchange process --shard I/N` processes at once (each with its own checkout and cache, as
   on separate machines), then `exchange process --finalize`.

It prints each wall time and its speed-up over --jobs 1, and checks that all three published the same
rootfs tarballs. On one machine the shards share its cores, so the speed-up measures overlap of I/O and
CPU, not what N machines would give.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from isal import igzip  # noqa: E402

from benchmarks.export import ContentGenerator, add_file  # noqa: E402
from exchange_cli.demo_image import build_demo_image  # noqa: E402
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo, run_git  # noqa: E402
from tests.infra.registry import RegistryServer, start_registry  # noqa: E402

EXCHANGE = ROOT / ".venv" / "bin" / "exchange"
FILE_SIZE = 4 << 20


def layer(generate: ContentGenerator, size: int, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for index in range(max(1, size // FILE_SIZE)):
            add_file(archive, f"{prefix}/file{index:03d}.bin", generate(min(FILE_SIZE, size)))
    return igzip.compress(buffer.getvalue(), compresslevel=1)


def gear(index: int, image: str) -> dict:
    return example_gear(name=f"gear{index}", custom={"gear-builder": {"image": image}})


def conforming_layers(workdir: Path, image: str, spec: dict) -> list[bytes]:
    """The demo image's layers (a busybox-like base, /flywheel/v0 with run and manifest.json), so the
    conformance checks pass as they would for a real gear."""
    layout = workdir / "demo-layout"
    manifest = json.loads(_blob(layout, build_demo_image(layout, image, spec)))
    return [_blob(layout, layer["digest"]) for layer in manifest["layers"]]


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def push_images(registry: RegistryServer, workdir: Path, count: int, mb: int, seed: int = 7) -> list[str]:
    """Images of 0.5x to 1.5x `mb` MB (uncompressed) of bulk in two layers: the shards have sizes to balance."""
    rng = random.Random(seed)
    generate = ContentGenerator(rng)
    references = []
    for index in range(count):
        image = f"{registry.host}/bench/gear{index}:1.0.0"
        size = int(mb * (0.5 + index / max(1, count - 1)) * (1 << 20))
        bulk = [layer(generate, size // 2, f"opt/lib{index}"), layer(generate, size - size // 2, f"opt/data{index}")]
        registry.push_image(f"bench/gear{index}", "1.0.0", [*conforming_layers(workdir, image, gear(index, image)), *bulk])
        references.append(image)
    return references


class Exchange:
    """A fresh exchange whose gears name `images`, with its bare remote and an empty bucket directory."""

    def __init__(self, workdir: Path, images: list[str]) -> None:
        self.workdir = workdir
        self.remote = init_repo(workdir / "remote.git", bare=True)
        self.repo = ExchangeRepo(init_repo(workdir / "exchange"))
        self.repo.write("manifests/README.md", "manifests\n")
        for index, image in enumerate(images):
            self.repo.write(f"gears/bench/gear{index}.json", gear(index, image))
        self.repo.commit("gears")
        self.repo.git("remote", "add", "origin", str(self.remote))
        self.repo.git("push", "-q", "origin", "master")
        self.bucket = workdir / "bucket"
        self.bucket.mkdir()

    def command(self, checkout: Path, registry_host: str, cache: str, *extra: str) -> list[str]:
        return [str(EXCHANGE), "process", "--repo", str(checkout), "--bucket", self.bucket.as_uri(),
                "--insecure-registry", registry_host, "--cache-dir", str(self.workdir / cache), "--quiet",
                "--report", str(self.workdir / "reports"), *extra]

    def manifests(self) -> list[str]:
        """Manifest paths: they name each rootfs by its hash (the contents differ only in bucket and commit)."""
        root = self.repo.root
        return [p.relative_to(root).as_posix() for p in sorted((root / "manifests").glob("*/*.json"))]


def run_checked(commands: list[list[str]]) -> None:
    running = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for command in commands]
    for process, command in zip(running, commands, strict=True):
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")


def one_machine(exchange: Exchange, registry_host: str, jobs: int) -> float:
    started = time.perf_counter()
    run_checked([exchange.command(exchange.repo.root, registry_host, "cache", "--jobs", str(jobs))])
    return time.perf_counter() - started


def fanned_out(exchange: Exchange, registry_host: str, shards: int) -> tuple[float, float]:
    """(seconds until every shard finished, seconds including the finalize step)."""
    records = exchange.workdir / "workspace" / "shards"
    checkouts = []
    for index in range(1, shards + 1):
        checkout = exchange.workdir / f"shard-{index}"
        run_git(exchange.workdir, "clone", "-q", str(exchange.remote), str(checkout))
        checkouts.append(checkout)
    started = time.perf_counter()
    run_checked([exchange.command(checkout, registry_host, f"cache-{index}", "--shard", f"{index}/{shards}",
                                  "--shard-dir", str(records))
                 for index, checkout in enumerate(checkouts, start=1)])
    fanned = time.perf_counter() - started
    run_checked([exchange.command(exchange.repo.root, registry_host, "cache-finalize", "--finalize", str(records))])
    return fanned, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", type=int, default=8)
    parser.add_argument("--mb", type=int, default=48, help="average uncompressed image size in MB")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workdir", type=Path, help="scratch directory [default: a new one under /tmp]")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-", dir="/tmp"))
    registry = start_registry(workdir / "registry")
    try:
        started = time.perf_counter()
        images = push_images(registry, workdir, args.specs, args.mb)
        print(f"{args.specs} images of ~{args.mb} MB pushed in {time.perf_counter() - started:.0f} s")
        serial = Exchange(workdir / "jobs-1", images)
        parallel = Exchange(workdir / f"jobs-{args.jobs}", images)
        sharded = Exchange(workdir / f"shards-{args.shards}", images)
        baseline = one_machine(serial, registry.host, 1)
        with_jobs = one_machine(parallel, registry.host, args.jobs)
        fan_out, with_shards = fanned_out(sharded, registry.host, args.shards)
        if not serial.manifests() == parallel.manifests() == sharded.manifests():
            raise SystemExit("the three runs published different rootfs tarballs")
        print(f"{'--jobs 1':<22}: {baseline:7.1f} s")
        print(f"{f'--jobs {args.jobs}':<22}: {with_jobs:7.1f} s   speed-up {baseline / with_jobs:4.2f}x")
        print(f"{f'{args.shards} shards + finalize':<22}: {with_shards:7.1f} s   speed-up {baseline / with_shards:4.2f}x"
              f"   (fan-out alone {fan_out:.1f} s, {baseline / fan_out:4.2f}x)")
        print(f"the same {len(serial.manifests())} rootfs tarballs from all three runs")
    finally:
        registry.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
