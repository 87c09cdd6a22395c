"""A small tmpfs, for what only a real file system does: run out of space (ENOSPC, as on a full
machine) or refuse writes (EROFS, which even root meets). Also scratch space that a tool fills and
empties again and that need not reach the disk (mmdebstrap's chroot in test_sbom_debian).

Mounting needs root with CAP_SYS_ADMIN (CI runs as root). Where that is refused the test is skipped
locally and fails under CI=true, like any other missing component.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from . import missing_component, require_executable

Mount = Callable[..., Path]


@contextmanager
def small_tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` (``mount -o size=``, e.g. ``4m``) mounted at `path` for the block's duration."""
    mount, umount = require_executable("mount"), require_executable("umount")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    mounted = subprocess.run([mount, "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True,
                             check=False)
    if mounted.returncode != 0:
        missing_component(f"cannot mount a {size} tmpfs at {path} (needs root with CAP_SYS_ADMIN): "
                          f"{mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([umount, "-l", str(path)], capture_output=True, check=False)  # best effort


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """`tmpfs("name", size="64k", read_only=False)`: a small_tmpfs at tmp_path/name until the test ends."""
    with ExitStack() as mounts:
        yield lambda name, *, size="64k", read_only=False: mounts.enter_context(
            small_tmpfs(tmp_path / name, size, read_only=read_only))


def fill(directory: Path) -> None:
    """Write into `directory` until its file system is full."""
    with (directory / "filler").open("wb", buffering=0) as out:  # unbuffered: nothing left to flush at close
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
