"""What a killed run leaves behind, found and removed by the next run once its owner is certainly gone.

A run's work directory (``exchange-process-*`` in the temp directory, holding the tarball being
exported) names its owner in ``owner.json``; a local bucket's partial uploads name theirs in the file
name (storage/local.py). Another live run's leftovers, and those whose owner cannot be known (another
machine, another PID namespace, an older version of the tool), are left alone.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..confined import NotConfined, read_small_file
from ..jsonpos import strict_data
from ..storage.bucket import Bucket
from ..storage.lease import BrokenLease, break_abandoned_lease
from ..storage.owner import Owner

WORK_DIR_PREFIX = "exchange-process-"
OWNER_FILE = "owner.json"
MAX_OWNER_FILE_BYTES = 64 * 1024  # an owner is a host, a pid and a start time


@contextmanager
def owned_work_dir() -> Iterator[Path]:
    """A fresh work directory that says who owns it; removed when the run ends."""
    work_dir = Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX))
    try:
        (work_dir / OWNER_FILE).write_text(json.dumps(Owner.current().as_json()))
        yield work_dir
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def remove_abandoned_work_dirs(parent: Path | None = None) -> list[Path]:
    removed = []
    for candidate in sorted(Path(parent or tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*")):
        try:
            owner = Owner.from_json(strict_data(read_small_file(candidate / OWNER_FILE, limit=MAX_OWNER_FILE_BYTES)))
        except (OSError, ValueError, NotConfined):
            continue  # being created right now, or not ours to judge
        if owner is not None and owner.is_gone():
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def remove_leftovers(bucket: Bucket, log: Callable[[str], None], *, break_lease: bool = True) -> BrokenLease | None:
    """Before a run starts: the work directories, partial uploads and lease of runs that died (returned:
    it may say which pushed commit its holder was still checking). `break_lease` False: a run that takes
    no lease and cannot finish that check (a shard) leaves the lease to the next run that can."""
    broken = break_abandoned_lease(bucket, log) if break_lease else None
    for path in remove_abandoned_work_dirs():
        log(f"removed {path}: the run that made it is gone")
    for name in bucket.remove_abandoned_uploads():
        log(f"removed the partial upload {name} from {bucket.uri}: the run that wrote it is gone")
    return broken
