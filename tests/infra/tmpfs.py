"""A small tmpfs, to fill a disk for real: writes there fail with ENOSPC, as on a full machine.

Mounting needs root with CAP_SYS_ADMIN (CI runs as root). Where that is refused the test is skipped
locally and fails under CI=true, like any other missing component.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import missing_component, require_executable


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (``mount -o size=``, e.g. ``4m``) mounted at `path` for the block's duration."""
    mount, umount = require_executable("mount"), require_executable("umount")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        missing_component(f"cannot mount a {size} tmpfs at {path} (needs root with CAP_SYS_ADMIN): "
                          f"{mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([umount, "-l", str(path)], capture_output=True)
