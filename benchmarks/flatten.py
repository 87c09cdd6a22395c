"""Measure the flattener and the gzip levels on a realistic tar; not part of the test suite.

    .venv/bin/python benchmarks/flatten.py --dir /usr/share --dir /usr/bin   # a real tree as one layer
    .venv/bin/python benchmarks/flatten.py --synthetic 100000                # many small entries
    .venv/bin/python benchmarks/flatten.py --layer some.tar --levels 0,1,2,3  # an existing layer tar

Prints flatten throughput and peak RSS (run one scenario per process: RSS is a high-water mark),
then, with --levels, the speed and ratio of each isal gzip level on the flattened tar.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from isal import isal_zlib  # noqa: E402

from exchange_cli.image.model import LayerBlob  # noqa: E402
from exchange_cli.rootfs.flatten import flatten  # noqa: E402
from tests.layers import directory, file, make_layer  # noqa: E402

CHUNK = 1 << 20


class FileAndHash:
    def __init__(self, path: Path) -> None:
        self.stream = open(path, "wb")
        self.hasher = hashlib.sha256()

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
        print(f"layer: {layer.size / 1e6:.0f} MB; peak RSS after building it: {peak_rss_mib():.0f} MiB")
        output = work / "rootfs.tar"
        sink = FileAndHash(output)
        started = time.perf_counter()
        stats = flatten([layer], sink)
        sink.stream.close()
        elapsed = time.perf_counter() - started
        print(f"flatten: {stats.entries} entries, {stats.tar_bytes / 1e6:.0f} MB in {elapsed:.2f} s "
              f"({stats.tar_bytes / elapsed / 1e6:.0f} MB/s); peak RSS {peak_rss_mib():.0f} MiB")
        if args.levels:
            bench_levels(output, [int(level) for level in args.levels.split(",")])


if __name__ == "__main__":
    main()
