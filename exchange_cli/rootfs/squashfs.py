"""The rootfs as a squashfs image, made by `tar2sqfs` (Debian `squashfs-tools-ng`) from the flattened tar.

The image is built from the very tar stream the tarball is compressed from (the flattener's blocks are
handed to both, see `Tee`), so the two formats cannot disagree on paths, modes, owners, times, link
targets, xattrs or hard links, and the layers are read once.

Reproducible squashfs is fragile: the bytes depend on the writer's version and its settings. Both are
pinned here: SETTINGS is part of the output format, and `find_tar2sqfs` refuses a tar2sqfs whose
version is not in TESTED_VERSIONS (each checked to write the same bytes twice, at different times and
with other job counts) unless told otherwise. The report records the version and the settings.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..bounded import Readable
from ..errors import ExchangeError
from ..image.model import LayerBlob
from ..progress import Task
from .flatten import flatten
from .index import LayerIndex

TAR2SQFS = "tar2sqfs"
# Versions whose output was checked to be reproducible (tests/test_export_squashfs.py) and to equal
# GNU tar's extraction of the tarball once unsquashfs extracts it. Another version may write other
# bytes for the same tree: an exchange would then publish a new sha384 for an unchanged gear.
TESTED_VERSIONS = frozenset({"1.2.0"})
# zstd level 3 in 1 MiB blocks: the smallest images of the settings measured for issue 25 (table and
# method in docs/squashfs.md) that cost about as much time. Bytes against the gzip tarball's: Debian
# bookworm minbase 0.805x (128 KiB blocks, the earlier pin: 0.888x; level 2: 0.837x; level 1: 0.889x), a
# 1.35 GB Debian tree with build-essential and Python's scientific stack 0.828x (0.891x, 0.863x, 0.915x),
# the export benchmark's small-file image 0.890x (0.930x, 0.910x, 0.933x). The 1 MiB blocks cost tar2sqfs
# about 5% more time than 128 KiB; levels 1 and 2 would save it 15-30% but miss 0.9x on real trees or
# the benchmark's. zstd's default level (15) took 13-17 s for 61 MB where level 3 took 0.8 s for 69 MB.
# A read from a mounted image decompresses at most one 1 MiB block. Changing any of these changes every image.
COMPRESSOR = "zstd"
COMPRESSOR_OPTIONS = "level=3"
BLOCK_SIZE = 1 << 20  # squashfs's largest
# The root directory is not in the flattened tar (it is the extraction directory): these are its attributes.
ROOT_DEFAULTS = "uid=0,gid=0,mode=0755,mtime=0"
# tar2sqfs writes blocks in order whatever its job count (tested), so the count is only about speed:
# -j 1 and -j 2 measured alike (issue 25, interleaved, on a shared 2-core machine), the export's
# 2 cores being busy with the flattener and the tarball's compression anyway.
JOBS = 2
SETTINGS = f"compressor={COMPRESSOR},{COMPRESSOR_OPTIONS},block-size={BLOCK_SIZE},root={ROOT_DEFAULTS}"
_VERSION = re.compile(rb"^tar2sqfs \(squashfs-tools-ng\) (\S+)$", re.MULTILINE)
_PIPE_SIZE = 1 << 20  # the flattener's blocks are 1 MiB: one write each, when the kernel allows it
_STDERR_SHOWN = 400
_INFLATED = 4 << 20


class SquashfsError(ExchangeError):
    """tar2sqfs is missing, untested or failed."""


@dataclass(frozen=True)
class Tar2sqfs:
    path: str
    version: str
    settings: str = SETTINGS

    def arguments(self, output: str) -> list[str]:
        # -s: a tar record it cannot represent is an error, never silently left out; no -k: keep the tar's times.
        return [self.path, "--quiet", "--no-skip", "--force", "--compressor", COMPRESSOR, "--comp-extra",
                COMPRESSOR_OPTIONS, "--block-size", str(BLOCK_SIZE), "--defaults", ROOT_DEFAULTS,
                "--num-jobs", str(JOBS), output]


def find_tar2sqfs(*, allow_untested: bool = False) -> Tar2sqfs:
    """The tar2sqfs on PATH and its version; refuses a missing one and, unless allowed, an untested one."""
    path = shutil.which(TAR2SQFS)
    if path is None:
        raise SquashfsError(f"{TAR2SQFS} is not installed: the squashfs artifact needs Debian's squashfs-tools-ng")
    answer = subprocess.run([path, "--version"], capture_output=True, check=False, timeout=30)
    found = _VERSION.search(answer.stdout)
    if answer.returncode != 0 or found is None:
        raise SquashfsError(f"{path} --version: not the tar2sqfs of squashfs-tools-ng (exit {answer.returncode})")
    version = found.group(1).decode("ascii", "replace")
    if version not in TESTED_VERSIONS and not allow_untested:
        raise SquashfsError(f"{path} is squashfs-tools-ng {version}, not a tested version "
                            f"({', '.join(sorted(TESTED_VERSIONS))}): its images may differ; "
                            "--allow-untested-squashfs-tools to use it anyway")
    return Tar2sqfs(path, version)


class SquashfsSink:
    """Takes the flattened tar's bytes and pipes them to a tar2sqfs writing the image at `output`.

    tar2sqfs runs in a session of its own, so the terminal's Ctrl-C reaches only us; `abandon` kills it."""

    def __init__(self, tool: Tar2sqfs, output: str) -> None:
        self.output = output
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed once tar2sqfs has ended
        self.process = subprocess.Popen(tool.arguments(output), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=self.errors, start_new_session=True)
        assert self.process.stdin is not None
        self.stdin = self.process.stdin
        self.done = False
        with contextlib.suppress(OSError):  # a smaller pipe only costs more system calls
            fcntl.fcntl(self.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.stdin.write(data)
        except BrokenPipeError:
            self.done = True
            self._wait_and_check()  # it stopped reading: its own message says why
            raise

    def finish(self) -> None:
        self.done = True
        with contextlib.suppress(BrokenPipeError):
            self.stdin.close()
        self._wait_and_check()

    def abandon(self) -> None:
        """Kill tar2sqfs, unless it has ended already (its pid may then be another process's)."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.stdin.close()
        self.process.wait()
        self.errors.close()

    def _wait_and_check(self) -> None:
        status = self.process.wait()
        self.errors.seek(0)
        message = self.errors.read().decode("utf-8", "replace").strip()
        self.errors.close()
        if status != 0:
            last = message.splitlines()[-1][:_STDERR_SHOWN] if message else f"exit status {status}"
            raise SquashfsError(f"tar2sqfs could not make the squashfs image: {last}")


class Tee:
    """Hands each of the flattener's blocks to every sink, the last one last (it may keep the block:
    see flatten's BlockWriter). The last sink's `new_block`, if it has one, gives the blocks."""

    def __init__(self, sinks: Sequence[object]) -> None:
        self.sinks = list(sinks)
        last = self.sinks[-1]
        if hasattr(last, "new_block"):
            self.new_block = last.new_block

    def write(self, data: bytearray | memoryview) -> None:
        for sink in self.sinks:
            sink.write(data)  # type: ignore[attr-defined]


def write_squashfs(layers: Sequence[LayerBlob], sink: SquashfsSink, *, progress_task: Task | None = None,
                   index: LayerIndex | None = None) -> int:
    """Flatten `layers` into `sink` alone (no tarball); finish it, or abandon it on any failure. Returns the entries."""
    try:
        stats = flatten(layers, sink, progress_task=progress_task, index=index)
        sink.finish()
    except BaseException:
        sink.abandon()
        raise
    return stats.entries


@dataclass(frozen=True)
class RemadeImage:
    sha384: str  # hex, of the image
    size: int
    tarball_sha384: str  # hex, of the gzip tarball it was made from: the caller checks it before using the image


def squashfs_of_tarball(stream: Readable, tool: Tar2sqfs, output: Path) -> RemadeImage:
    """The squashfs image of a published rootfs tarball read from `stream`: its gzip is undone and the tar
    stream inside, the flattener's own bytes, goes to tar2sqfs as at export, so the image has the same bytes."""
    hasher, inflate = hashlib.sha384(), zlib.decompressobj(zlib.MAX_WBITS | 16)  # gzip framing
    sink = SquashfsSink(tool, str(output))
    try:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
            while chunk:  # at most _INFLATED bytes at a time, however well the tar compressed
                sink.write(inflate.decompress(chunk, _INFLATED))
                chunk = inflate.unconsumed_tail
        sink.write(inflate.flush())
        if not inflate.eof:
            raise SquashfsError("the rootfs tarball ends before its gzip stream does")
        sink.finish()
    except zlib.error as error:
        sink.abandon()
        raise SquashfsError(f"the rootfs tarball is not gzip: {error}") from None
    except BaseException:
        sink.abandon()
        raise
    sha384, size = image_digest(output)
    return RemadeImage(sha384, size, hasher.hexdigest())


def image_digest(path: Path) -> tuple[str, int]:
    """The sha384 (hex) and size of an image tar2sqfs wrote: read back from the file, since tar2sqfs seeks
    back to write its superblock last and its bytes cannot be hashed on the way."""
    digest, size = hashlib.sha384(), 0
    with open(path, "rb") as image:
        while block := image.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
