"""A bucket in a local directory (`file:///abs/path`), for tests, mirrors and air-gapped exchanges.

Layout under the root:
  <name>                            the object's bytes (names may contain '/': subdirectories)
  .exchange-sha384/<quoted>.json    sidecar: {"sha384", "size", "generation"} of the object it describes;
                                    <quoted> is the name percent-encoded ('/' too), or its sha256 if long
  .../.exchange-upload-<owner>-*    temporary files of uploads in progress (removed on failure; <owner>
                                    names the process, so a later run removes those of a process that died)
  .exchange-lease.json, .exchange-control.lock   the publish lease (storage/lease.py) and the lock that
                                    makes its conditional writes atomic between processes

A sidecar counts only while its size and generation match the object; otherwise the object's sha384 is
unknown (None) and is recomputed on demand. Generations are "<inode>-<mtime_ns>": an object replaced
by anyone gets a new one. Names with a part starting with ".exchange-" are reserved.
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import hashlib
import json
import os
import stat as stat_mode
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from exchange_cli.confined import NotConfined, read_small_file
from exchange_cli.durable import fsync_directory, write_atomically
from exchange_cli.errors import describe_os_error
from exchange_cli.jsonpos import strict_data
from exchange_cli.progress import Task
from exchange_cli.storage.bucket import (
    MAX_CONTROL_BYTES,
    Bucket,
    BucketUriError,
    ObjectChanged,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    UploadReader,
    _CreateRaced,
    check_object_name,
    verify_sent_sha384,
)
from exchange_cli.storage.owner import Owner
from exchange_cli.testgates import gate

RESERVED_PREFIX = ".exchange-"
SIDECAR_DIR = ".exchange-sha384"
TEMP_PREFIX = ".exchange-upload-"
CONTROL_LOCK = ".exchange-control.lock"
COPY_BLOCK_SIZE = 1024 * 1024
MAX_QUOTED_SIDECAR_NAME = 200  # file names are limited to 255 bytes
MAX_SIDECAR_BYTES = 64 * 1024  # a size, a generation and a sha384
# Published objects are meant to be served and downloaded; mkstemp creates them 0600.
OBJECT_MODE = 0o644
# Filesystems without hard links: fall back to a rename that checks for an existing object first.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}


class LocalBucket(Bucket):
    def __init__(self, root: Path, *, download_url: str | None = None) -> None:
        if root.exists() and not root.is_dir():
            raise BucketUriError(f"bucket directory {root} exists but is not a directory")
        self.root = root
        self.uri = root.as_uri()
        self._download_base = (download_url or root.as_uri()).rstrip("/")

    def require_exists(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(f"bucket directory {self.root} does not exist")

    def stat(self, name: str) -> ObjectInfo | None:
        path = self._path(name)
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mode.S_ISREG(status.st_mode):
            raise StorageError(f"{self.uri}: {name} is not a regular file")
        return self._info(name, status)

    def delete(self, name: str, *, generation: str | None = None) -> bool:
        current = self.stat(name)
        if current is None:
            return False
        # Not atomic against a concurrent replace between this check and the unlink; a local
        # directory has no conditional delete, and one exchange run owns it at a time.
        if generation is not None and current.generation != generation:
            raise ObjectChanged(f"{self.uri}: not deleting {name}: it was replaced since generation {generation}")
        self._path(name).unlink(missing_ok=True)
        self._sidecar_path(name).unlink(missing_ok=True)
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for name in sorted(self._names_under(prefix.rpartition("/")[0])):
            if name.startswith(prefix):
                info = self.stat(name)
                if info is not None:  # removed while we were listing
                    yield info

    def open_read(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"{self.uri}: no object {name}") from None

    def download_url(self, name: str) -> str:
        return f"{self._download_base}/{quote(check_object_name(name))}"

    def _create(self, name: str, source: Path, *, size: int, sha384: str, progress_task: Task | None) -> ObjectInfo:
        path = self._path(name)
        with self._writing(f"uploading {name}", path):
            return self._create_file(name, path, source, sha384, progress_task)

    @contextmanager
    def _writing(self, action: str, path: Path) -> Iterator[None]:
        """A full or read-only disk is the environment's failure (exit 2), and names the file, which the
        OSError of a failed write() does not."""
        try:
            yield
        except OSError as error:
            reason = describe_os_error(error) if error.filename else f"{path}: {error.strerror or error}"
            raise StorageUnavailable(f"{self.uri}: {action}: {reason}") from None

    def _create_file(self, name: str, path: Path, source: Path, sha384: str, progress_task: Task | None) -> ObjectInfo:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(prefix=_upload_prefix(), dir=path.parent)
        temp = Path(temp_name)
        try:
            with os.fdopen(descriptor, "wb") as out, source.open("rb") as stream:
                reader = UploadReader(stream, progress_task)
                while block := reader.read(COPY_BLOCK_SIZE):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            gate("upload")  # tests: held with the partial upload written, not yet in place
            verify_sent_sha384(reader, source, sha384, name)
            temp.chmod(OBJECT_MODE)
            _publish_without_overwriting(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        fsync_directory(path.parent)
        return self._remember_sha384(self._info(name, path.stat()), sha384)

    def remove_abandoned_uploads(self) -> builtins.list[str]:  # `list` here is the method above
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for current, subdirs, files in os.walk(self.root):
            subdirs[:] = [d for d in subdirs if not d.startswith(RESERVED_PREFIX) or d == SIDECAR_DIR]
            for file_name in files:
                owner = _upload_owner(file_name)
                if owner is not None and owner.is_gone():
                    path = Path(current) / file_name
                    path.unlink(missing_ok=True)
                    removed.append(path.relative_to(self.root).as_posix())
        return sorted(removed)

    def create_control(self, name: str, data: bytes) -> str:
        with self._writing(f"creating {name}", self._control_path(name)), self._control_lock():
            path = self._control_path(name)
            if path.exists():
                raise ObjectExists(f"{self.uri}: {name} exists")
            _write_atomically(path, data)
            return _generation(path.stat())

    def read_control(self, name: str) -> tuple[bytes, str] | None:
        # No lock: writes replace the file atomically, and the generation is that of the file read.
        return self._read_control(name)

    def replace_control(self, name: str, data: bytes, generation: str) -> str:
        with self._writing(f"replacing {name}", self._control_path(name)), self._control_lock():
            self._require_generation(name, generation)
            path = self._control_path(name)
            _write_atomically(path, data)
            return _generation(path.stat())

    def delete_control(self, name: str, generation: str) -> bool:
        with self._control_lock():
            if self._read_control(name) is None:
                return False
            self._require_generation(name, generation)
            self._control_path(name).unlink()
            return True

    def _read_control(self, name: str) -> tuple[bytes, str] | None:
        path = self._control_path(name)
        try:
            with path.open("rb") as handle:
                return handle.read(MAX_CONTROL_BYTES + 1), _generation(os.fstat(handle.fileno()))
        except FileNotFoundError:
            return None

    def _require_generation(self, name: str, generation: str) -> None:
        current = self._read_control(name)
        if current is None or current[1] != generation:
            raise ObjectChanged(f"{self.uri}: {name} is no longer at generation {generation}")

    @contextmanager
    def _control_lock(self) -> Iterator[None]:
        """One process at a time reads-and-writes control objects: a local directory has no conditional
        writes, and an advisory lock on a file beside them gives them (the kernel drops it if we die)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / CONTROL_LOCK).open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _control_path(self, name: str) -> Path:
        if not name.startswith(RESERVED_PREFIX) or "/" in name:
            raise StorageError(f"invalid control object name {name!r}: one part starting with {RESERVED_PREFIX!r}")
        return self.root / name

    def _remember_sha384(self, info: ObjectInfo, sha384: str) -> ObjectInfo:
        sidecar = self._sidecar_path(info.name)
        record = {"sha384": sha384, "size": info.size, "generation": info.generation}
        try:
            sidecar.parent.mkdir(exist_ok=True)
            _write_atomically(sidecar, json.dumps(record).encode())
        except OSError:
            pass  # only a cache: without it the sha384 is recomputed on demand, the object is complete
        return ObjectInfo(info.name, info.size, sha384, info.generation, info.url)

    def _info(self, name: str, status: os.stat_result) -> ObjectInfo:
        generation = _generation(status)
        return ObjectInfo(name, status.st_size, self._recorded_sha384(name, status.st_size, generation),
                          generation, self.download_url(name))

    def _recorded_sha384(self, name: str, size: int, generation: str) -> str | None:
        try:
            record = strict_data(read_small_file(self._sidecar_path(name), limit=MAX_SIDECAR_BYTES))
        except (OSError, ValueError, NotConfined):
            return None
        if not isinstance(record, dict) or record.get("size") != size or record.get("generation") != generation:
            return None
        sha384 = record.get("sha384")
        return sha384 if isinstance(sha384, str) else None

    def _names_under(self, directory: str) -> Iterator[str]:
        if directory and any(part in ("", ".", "..") for part in directory.split("/")):
            return  # no object name has such a part; and '..' must not walk out of the root
        start = self.root / directory if directory else self.root
        for current, subdirs, files in os.walk(start):
            subdirs[:] = [d for d in subdirs if not d.startswith(RESERVED_PREFIX)]
            relative = Path(current).relative_to(self.root)
            for file_name in files:
                if not file_name.startswith(RESERVED_PREFIX):
                    yield (relative / file_name).as_posix()

    def _path(self, name: str) -> Path:
        check_object_name(name)
        if any(part.startswith(RESERVED_PREFIX) for part in name.split("/")):
            raise StorageError(f"invalid object name {name!r}: names starting with {RESERVED_PREFIX!r} are reserved")
        return self.root / name

    def _sidecar_path(self, name: str) -> Path:
        quoted = quote(name, safe="")
        if len(quoted) > MAX_QUOTED_SIDECAR_NAME:
            quoted = hashlib.sha256(name.encode()).hexdigest()
        return self.root / SIDECAR_DIR / f"{quoted}.json"


def _generation(status: os.stat_result) -> str:
    return f"{status.st_ino}-{status.st_mtime_ns}"


def _upload_prefix() -> str:
    return f"{TEMP_PREFIX}{Owner.current().token()}-"


def _upload_owner(file_name: str) -> Owner | None:
    """The process that was writing this partial upload; None for other files (and older partials)."""
    if not file_name.startswith(TEMP_PREFIX):
        return None
    token, separator, _ = file_name[len(TEMP_PREFIX):].rpartition("-")
    return Owner.from_token(token) if separator else None


def _publish_without_overwriting(temp: Path, path: Path) -> None:
    """Make `temp` visible as `path`, failing with _CreateRaced if `path` exists (like GCS ifGenerationMatch=0)."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise _CreateRaced from None
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        if path.exists():
            raise _CreateRaced from None
        os.rename(temp, path)


def _write_atomically(path: Path, content: bytes) -> None:
    """Its temporary file is named as this process's partial upload, so a dead writer's is swept."""
    write_atomically(path, content, prefix=_upload_prefix())
    fsync_directory(path.parent)
