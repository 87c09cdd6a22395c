"""Measure the flattener and the gzip levels on a realistic tar; not part of the test suite.

    .venv/bin/python benchmarks/flatten.py --dir /usr/share --dir /usr/bin   # a real tree as one layer
    .venv/bin/python benchmarks/flatten.py --synthetic 100000                # many small entries
    .venv/bin/python benchmarks/flatten.py --layer some.tar --levels 0,1,2,3  # an existing layer tar

Prints flatten throughput (best of --repeat runs) in MB/s and entries/s, the sha384 of the flattened
tar, and the peak RSS with its growth per entry over the RSS after building the layer (run one
scenario per process: RSS is a high-water mark); then, with --levels, the speed and ratio of each
isal gzip level on the flattened tar.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from isal import isal_zlib

from exchange_cli.image.model import LayerBlob
from exchange_cli.rootfs.flatten import flatten
from tests.layers import directory, file, make_layer

CHUNK = 1 << 20


class FileAndHash:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.hasher = hashlib.sha384()

    def write(self, data: bytes) -> None:
        self.hasher.update(data)
        self.stream.write(data)


def layer_from_dirs(work: Path, dirs: list[str]):
    tar_path = work / "layer-0.tar"
    subprocess.run(["tar", "--format=pax", "-cf", str(tar_path), *dirs], check=True, stderr=subprocess.DEVNULL)
    return LayerBlob("sha256:bench", "sha256:bench", "application/vnd.oci.image.layer.v1.tar",
                     tar_path.stat().st_size, tar_path)


def synthetic_layer(work: Path, count: int):
    def entries():  # a generator, so that building the layer does not raise the peak RSS
        for index in range(count):
            if index % 100 == 0:
                yield directory(f"usr/share/pkg{index // 100:05d}")
            yield file(f"usr/share/pkg{index // 100:05d}/file-{index:07d}.txt", b"x" * (index % 700))
    return make_layer(work, entries())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_levels(tar_path: Path, levels: list[int]) -> None:
    size = tar_path.stat().st_size
    for level in levels:
        compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
        compressed = 0
        started = time.perf_counter()
        with open(tar_path, "rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                compressed += len(compressor.compress(chunk))
        compressed += len(compressor.flush())
        elapsed = time.perf_counter() - started
        print(f"isal level {level}: {size / elapsed / 1e6:7.1f} MB/s, {compressed / size:6.1%} of {size / 1e6:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", action="append", default=[])
    parser.add_argument("--layer", type=Path, help="an existing layer tar")
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--levels", default="", help="comma-separated isal levels to measure, e.g. 0,1,2,3")
    parser.add_argument("--repeat", type=int, default=1, help="flatten this many times; the best time counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.layer:
            layer = LayerBlob("sha256:bench", "sha256:bench", "application/vnd.oci.image.layer.v1.tar",
                              args.layer.stat().st_size, args.layer)
        elif args.dir:
            layer = layer_from_dirs(work, args.dir)
        else:
            layer = synthetic_layer(work, args.synthetic)
        baseline_rss = peak_rss_mib()
        print(f"layer: {layer.size / 1e6:.0f} MB; peak RSS after building it: {baseline_rss:.0f} MiB")
        output = work / "rootfs.tar"
        timings, cpu_times = [], []
        for _ in range(args.repeat):
            with open(output, "wb") as stream:
                sink = FileAndHash(stream)
                started, cpu_started = time.perf_counter(), time.process_time()
                stats = flatten([layer], sink)
            timings.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
        elapsed = min(timings)
        growth_kib = (peak_rss_mib() - baseline_rss) * 1024 / max(stats.entries, 1)
        print(f"flatten: {stats.entries} entries, {stats.tar_bytes / 1e6:.0f} MB in {elapsed:.2f} s (best of "
              f"{len(timings)}: {', '.join(f'{t:.2f}' for t in timings)}); {stats.tar_bytes / elapsed / 1e6:.0f} MB/s, "
              f"{stats.entries / elapsed / 1000:.1f}k entries/s")
        print(f"cpu: {min(cpu_times):.2f} s (all threads, best of {len(cpu_times)}), "
              f"{stats.entries / min(cpu_times) / 1000:.1f}k entries per cpu-second")
        print(f"memory: peak RSS {peak_rss_mib():.0f} MiB, {growth_kib:.3f} KiB per entry over the layer's baseline")
        print(f"tar sha384: {sink.hasher.hexdigest()}")
        if args.levels:
            bench_levels(output, [int(level) for level in args.levels.split(",")])


if __name__ == "__main__":
    main()
