"""The published bytes of a fixed synthetic image's export are pinned: a speed-up must not move them.

The image mixes what the flattener writes from a template (plain files, directories, symlinks,
fifos) with everything that takes the general way (PAX records, xattrs, sub-second times, long and
non-ASCII names, base-256 ids, devices, hard links), spread over GNU, PAX and ustar layers with
whiteouts and an opaque directory in Docker's order, and enough data for several compression
blocks. The digests were taken with the exporter as it was before any of that existed; a change
here changes every published sha384 and must be deliberate.
"""

from __future__ import annotations

import hashlib
import random
import struct
import tarfile
from pathlib import Path

from exchange_cli.export import ExportOptions, export_rootfs
from exchange_cli.image.blobcache import BlobCache
from exchange_cli.image.model import Platform
from tests.infra.image_files import OciLayout
from tests.layers import (
    Entry,
    blockdev,
    chardev,
    directory,
    fifo,
    file,
    hardlink,
    opaque,
    symlink,
    whiteout,
    write_layer_tar,
)

CAPABILITY = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)


def _lower(rng: random.Random) -> list[Entry]:
    entries: list[Entry] = [directory("usr"), directory("usr/lib", mode=0o755), directory("etc", mode=0o750),
                            directory("tmp", mode=0o1777), directory("opt", uid=1000, gid=1000)]
    for package in range(40):
        entries.append(directory(f"usr/lib/pkg{package:02d}", mtime=1_600_000_000 + package))
        for index in range(50):
            size = rng.choice([0, 1, 511, 512, 513, rng.randrange(3000)])
            entries.append(file(f"usr/lib/pkg{package:02d}/file{index:02d}.py", rng.randbytes(size),
                                mode=rng.choice([0o644, 0o755, 0o4755]), uid=rng.choice([0, 1000]),
                                uname=rng.choice(["", "root", "app"]), mtime=1_600_000_000 + rng.randrange(10**6)))
    entries += [
        file("opt/big.bin", rng.randbytes(2_500_000) + bytes(300_000), mode=0o600),
        symlink("usr/lib/libc.so", "libc.so.6"), symlink("bin", "usr/bin", mode=0o644),
        fifo("tmp/fifo"), chardev("dev/null", 1, 3), blockdev("dev/sda", 8, 0),
        file("usr/lib/" + "long-" * 30 + "name.txt", b"long name"),
        symlink("etc/long-link", "/" + "target/" * 30),
        file("etc/ünïcödé", b"unicode"), file("etc/raw-\udcff\udcfe", b"not utf-8"),
        file("opt/big-ids", b"ids", uid=10_000_000, gid=3_000_000),
        file("opt/old", b"deleted later"), directory("opt/cache"), file("opt/cache/a", b"a"),
        file("etc/replaced-by-dir", b"file"), directory("etc/replaced-by-file"), file("etc/replaced-by-file/x"),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ]
    return entries


def _middle() -> list[Entry]:  # Docker's order: a directory, its opaque marker, whiteouts among siblings
    return [
        directory("etc"), file("etc/.hidden", b"sorts before the markers"),
        directory("etc/replaced-by-dir"), opaque("etc/replaced-by-dir"), file("etc/replaced-by-dir/y", b"y"),
        file("etc/replaced-by-file", b"now a file"),
        file("etc/shadow", b"secret", mode=0o640, gid=42, uname="u" * 40, gname="shadow"),
        hardlink("etc/passwd-link", "etc/passwd"),
        directory("opt"), whiteout("opt/cache"), opaque("opt/cache"), file("opt/cache/b", b"b"),
        whiteout("opt/old"),
        file("usr/bin/ping", b"ping", xattrs={"security.capability": CAPABILITY, "user.note": "x"}),
        file("usr/bin/precise", b"t", mtime=1_700_000_000.5),
        hardlink("usr/bin/ping-too", "usr/bin/ping"),
        symlink("usr/bin/ünïcödé-link", "ünïcödé"),
    ]


def _upper() -> list[Entry]:
    return [directory("usr"), directory("usr/lib"), directory("usr/lib/pkg00"),
            file("usr/lib/pkg00/file00.py", b"patched\n" * 100), whiteout("usr/lib/pkg01")]


def test_export_of_a_fixed_synthetic_image_is_pinned(tmp_path: Path) -> None:
    rng = random.Random(20240613)
    layers = []
    for number, (entries, tar_format) in enumerate(((_lower(rng), tarfile.GNU_FORMAT), (_middle(), tarfile.PAX_FORMAT),
                                                   (_upper(), tarfile.USTAR_FORMAT))):
        path = write_layer_tar(tmp_path / f"layer-{number}.tar", entries, format=tar_format)
        layers.append(path.read_bytes())
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image(layers), tag="pinned")
    result = export_rootfs(f"oci:{layout.root}:pinned", tmp_path / "rootfs.tgz",
                           options=ExportOptions(platform=Platform("linux", "amd64"), cache=BlobCache(tmp_path / "cache")))
    assert result.sha384 == hashlib.sha384((tmp_path / "rootfs.tgz").read_bytes()).hexdigest()
    assert (result.sha384, result.size, result.entries) == (
        "36f82ad4f5f003cf7c5203fb243cbe65ee50f824e5b13d79df13778994618b3a10866ac97ddd5f0feaccfe7eadaa8bb4", 3551479, 2020)
