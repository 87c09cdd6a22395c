"""Benchmark `exchange export` against the old pipeline and against the floor, on a realistic image.

    .venv/bin/python benchmarks/export.py --size-gb 1       # and --size-gb 0.25: RSS must not grow

It starts its own dockerd (tests/infra/dockerd.py) and docker-registry (tests/infra/registry.py),
builds an image of about SIZE GB (many small files and a few large ones over several layers; seeded
pseudo-random bytes mixed with text, so gzip cannot cheat), pushes it, and times:

1. ours: `exchange export --source registry` as a subprocess, cold cache then warm cache, with its
   peak RSS as /usr/bin/time measures it;
2. the old pipeline: `docker create` + `docker export | gzip -n > f` + `sha384sum f`;
3. the floor: stream each layer blob from the registry, gunzip it and sha384 the output; no
   flattening, no compression.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from isal import isal_zlib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.infra.dockerd import Dockerd, running_dockerd  # noqa: E402
from tests.infra.registry import start_registry  # noqa: E402

EXCHANGE = ROOT / ".venv" / "bin" / "exchange"
WORDS = ("exchange gear rootfs layer manifest digest flywheel boutique neuro imaging subject session "
         "analysis acquisition input output config license version python library shared object").split()


@dataclass
class Timing:
    seconds: float
    max_rss_kib: int = 0


class ContentGenerator:
    """Half pseudo-random bytes, half text slices: compresses to roughly 55-60%, like binaries plus docs."""

    def __init__(self, rng: random.Random, corpus_size: int = 8 << 20) -> None:
        self.rng = rng
        lines, length = [], 0
        while length < corpus_size:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + f" {rng.random():.12f}\n"
            lines.append(line)
            length += len(line)
        self.corpus = "".join(lines).encode()

    def __call__(self, size: int) -> bytes:
        random_part = self.rng.randbytes(size // 2)
        text_size = size - len(random_part)
        chunks, remaining = [], text_size
        while remaining > 0:  # slices from random offsets: no long repeats within gzip's 32 KiB window
            offset = self.rng.randrange(len(self.corpus) - 65536)
            piece = self.corpus[offset:offset + min(remaining, 65536)]
            chunks.append(piece)
            remaining -= len(piece)
        return random_part + b"".join(chunks)


def add_file(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    archive.addfile(info, io.BytesIO(data))


def write_context(path: Path, size_bytes: int, seed: int = 20240601) -> None:
    """A build context: 3 directories of small files (30%), 2 of large files (70%), then a layer that edits."""
    rng = random.Random(seed)
    generated_content = ContentGenerator(rng)
    dockerfile = "\n".join([
        "FROM busybox-local:1",
        "COPY small0 /usr/share/small0", "COPY small1 /usr/lib/small1", "COPY small2 /opt/small2",
        "COPY large0 /opt/large0", "COPY large1 /data/large1",
        # A later layer deletes and rewrites things, so flattening has whiteouts to apply.
        "RUN rm -rf /usr/share/small0/d00* /opt/large0/blob0 && echo patched >> /usr/lib/small1/d001/f0001.txt"
        " && mkdir -p /etc/app && echo done > /etc/app/state",
    ]) + "\n"
    with tarfile.open(path, "w") as archive:
        add_file(archive, "Dockerfile", dockerfile.encode())
        small_budget = int(size_bytes * 0.3) // 3
        for part in range(3):
            written, index = 0, 0
            while written < small_budget:
                size = min(int(rng.paretovariate(1.2) * 2048), 256 * 1024)
                name = f"small{part}/d{index // 200:03d}/f{index % 200:04d}.{rng.choice(['txt', 'so', 'py', 'json'])}"
                add_file(archive, name, generated_content(size), rng.choice([0o644, 0o755]))
                written += size
                index += 1
        large_budget = int(size_bytes * 0.7) // 2
        for part in range(2):
            for blob in range(3):
                add_file(archive, f"large{part}/blob{blob}", generated_content(large_budget // 3))


def timed_child(command: list[str], **kwargs) -> Timing:  # noqa: ANN003
    """Run a subprocess under /usr/bin/time: its wall time and its own peak RSS.

    Not wait4's or RUSAGE_CHILDREN's ru_maxrss: Linux carries the high-water RSS across execve, so a
    child forked from this (large, after generating the image) process would report our RSS, not its own.
    /usr/bin/time is small, and forks the measured command itself.
    """
    with tempfile.NamedTemporaryFile("r") as rss_file:
        started = time.perf_counter()
        completed = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *command], **kwargs)
        elapsed = time.perf_counter() - started
        if completed.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed with exit code {completed.returncode}")
        return Timing(elapsed, int(rss_file.read().split()[-1]))


def ours(reference: str, registry_host: str, output: Path, cache: Path) -> Timing:
    return timed_child([str(EXCHANGE), "export", reference, "--source", "registry", "--insecure-registry",
                        registry_host, "-o", str(output), "--cache-dir", str(cache), "--quiet", "--format", "json"],
                       stdout=subprocess.DEVNULL)


def old_pipeline(daemon: Dockerd, image: str, output: Path) -> Timing:
    env = {**os.environ, "DOCKER_HOST": daemon.host}
    script = (f'set -e; id=$(docker create {image} /bin/sh); docker export "$id" | gzip -n > {output}; '
              f'sha384sum {output} > /dev/null; docker rm "$id" > /dev/null')
    return timed_child(["sh", "-c", script], env=env)


def floor(registry_url: str, repository: str, tag: str) -> Timing:
    """Fetch, gunzip and sha384 each layer blob: the least work any exporter must do."""
    started = time.perf_counter()
    session = requests.Session()
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    manifest = session.get(f"{registry_url}/v2/{repository}/manifests/{tag}", headers={"Accept": accept}).json()
    hasher = hashlib.sha384()
    for layer in manifest["layers"]:
        decompressor = isal_zlib.decompressobj(31)
        with session.get(f"{registry_url}/v2/{repository}/blobs/{layer['digest']}", stream=True) as response:
            response.raise_for_status()
            for chunk in response.iter_content(1 << 20):
                hasher.update(decompressor.decompress(chunk))
    return Timing(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0, help="approximate uncompressed image size")
    parser.add_argument("--workdir", type=Path, help="scratch directory [default: a new one under /tmp]")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (outputs, cache) for inspection")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-export-", dir="/tmp"))
    size_bytes = int(args.size_gb * 1024**3)
    registry = start_registry(workdir / "registry")
    try:
        with running_dockerd(workdir / "dockerd") as daemon:
            run(daemon, registry, workdir, size_bytes)
    finally:
        registry.stop()
        if args.keep:
            shutil.rmtree(workdir / "dockerd" / "data", ignore_errors=True)  # vfs layer copies: GBs
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(daemon: Dockerd, registry, workdir: Path, size_bytes: int) -> None:  # noqa: ANN001
    started = time.perf_counter()
    context = workdir / "context.tar"
    write_context(context, size_bytes)
    print(f"context: {context.stat().st_size / 1e9:.2f} GB generated in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    with open(context, "rb") as handle:
        daemon.build_context(handle, "bench/export:1")
    context.unlink()
    remote = f"{registry.host}/bench/export:1"
    daemon.client.images.get("bench/export:1").tag(remote)
    daemon.push(remote)
    image_size = daemon.client.images.get(remote).attrs["Size"]
    print(f"image: {image_size / 1e9:.2f} GB, built and pushed in {time.perf_counter() - started:.0f} s")

    cache = workdir / "cache"
    cold = ours(remote, registry.host, workdir / "ours-cold.tgz", cache)
    warm = ours(remote, registry.host, workdir / "ours-warm.tgz", cache)
    assert filecmp.cmp(workdir / "ours-cold.tgz", workdir / "ours-warm.tgz", shallow=False)
    old = old_pipeline(daemon, remote, workdir / "old.tgz")
    least = floor(registry.url, "bench/export", "1")
    ours_size, old_size = (workdir / "ours-cold.tgz").stat().st_size, (workdir / "old.tgz").stat().st_size

    print(f"ours, cold cache : {cold.seconds:7.1f} s  peak RSS {cold.max_rss_kib / 1024:6.0f} MiB  "
          f"output {ours_size / 1e6:.0f} MB")
    print(f"ours, warm cache : {warm.seconds:7.1f} s  peak RSS {warm.max_rss_kib / 1024:6.0f} MiB")
    print(f"old pipeline     : {old.seconds:7.1f} s  (docker create + export | gzip -n + sha384sum), "
          f"output {old_size / 1e6:.0f} MB")
    print(f"floor            : {least.seconds:7.1f} s  (fetch + gunzip + sha384 of the layer blobs)")
    print(f"ratios: cold/old {cold.seconds / old.seconds:.2f}  warm/old {warm.seconds / old.seconds:.2f}  "
          f"cold/floor {cold.seconds / least.seconds:.2f}  warm/floor {warm.seconds / least.seconds:.2f}")


if __name__ == "__main__":
    main()
