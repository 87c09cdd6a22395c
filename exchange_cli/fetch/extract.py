"""Unpack a rootfs tarball without trusting it: nothing lands outside the target, nothing is written
through a symlink, and only files, directories and links are created.

A rootfs legitimately holds absolute symlinks (``/bin/sh -> /bin/busybox``) and relative ones that
climb (``lib -> ../usr/lib``): they are created as they are, since they mean something only inside
the image. What is refused is an entry that would *use* such a link: a member whose path goes through
a symlink, a hard link whose target does, a name that is absolute or has a ``..`` part.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ExchangeError
from ..lockedtemp import locked_temp_dir, remove_abandoned

BLOCK_SIZE = 1024 * 1024
STAGING_SUFFIX = ".extracting"
PERMISSION_BITS = 0o777  # setuid, setgid and sticky bits are dropped


class UnsafeArchive(ExchangeError):
    pass


@dataclass
class ExtractionSummary:
    files: int = 0
    directories: int = 0
    links: int = 0
    skipped: int = 0  # devices and fifos: an unprivileged extraction cannot and need not make them


def extract_safely(archive: Path, target: Path) -> ExtractionSummary:
    """Extract into a fresh directory beside `target`, renamed into place only when complete."""
    if target.exists():
        raise ExchangeError(f"{target} already exists; remove it or choose another -o directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Staging directories of extractions that died (SIGKILL, a power cut) are removed; a live one is locked.
    remove_abandoned(target.parent, f".{glob.escape(target.name)}.*{STAGING_SUFFIX}")
    lock, staging = locked_temp_dir(target.parent, f".{target.name}.", STAGING_SUFFIX)
    try:
        summary = _extract_into(archive, staging)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(lock)
    return summary


def _extract_into(archive: Path, root: Path) -> ExtractionSummary:
    summary = ExtractionSummary()
    directory_modes: dict[Path, int] = {}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                _extract_member(tar, member, root, summary, directory_modes)
    except tarfile.TarError as error:
        raise UnsafeArchive(f"{archive}: not a readable tar archive: {error}") from None
    # Last, deepest first: a read-only directory must not stop the entries below it from being written.
    for path in sorted(directory_modes, key=lambda p: len(p.parts), reverse=True):
        os.chmod(path, directory_modes[path], follow_symlinks=False)
    return summary


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, summary: ExtractionSummary,
                    directory_modes: dict[Path, int]) -> None:
    relative = member_path(member.name)
    if relative is None:
        return  # the archive's root directory itself
    destination = _prepare_parent(root, relative, member.name)
    if member.isdir():
        if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
            raise UnsafeArchive(f"{member.name!r}: a directory entry would replace a link or file")
        destination.mkdir(exist_ok=True)
        directory_modes[destination] = (member.mode & PERMISSION_BITS) | stat.S_IRWXU
        summary.directories += 1
        return
    if not (member.isreg() or member.issym() or member.islnk()):
        summary.skipped += 1
        return
    _remove_existing(destination, member.name)
    if member.isreg():
        _write_file(tar, member, destination)
        summary.files += 1
    elif member.issym():
        os.symlink(member.linkname, destination)
        summary.links += 1
    else:
        link_target = member_path(member.linkname)
        if link_target is None:
            raise UnsafeArchive(f"{member.name!r}: hard link to {member.linkname!r}, which is not a file")
        source = _prepare_parent(root, link_target, member.linkname)
        if source.is_symlink() or not source.is_file():
            raise UnsafeArchive(f"{member.name!r}: hard link to {member.linkname!r}, which is not a file extracted before it")
        os.link(source, destination, follow_symlinks=False)
        summary.links += 1


def member_path(name: str) -> PurePosixPath | None:
    """The member's path relative to the target; UnsafeArchive for absolute names and `..` parts."""
    path = PurePosixPath(name)
    if path.is_absolute() or "\\" in name or "\0" in name:
        raise UnsafeArchive(f"{name!r}: absolute or malformed member name; refusing to extract outside the target")
    parts = [part for part in path.parts if part != "."]
    if ".." in parts:
        raise UnsafeArchive(f"{name!r}: member name climbs out with '..'; refusing to extract outside the target")
    return PurePosixPath(*parts) if parts else None


def _prepare_parent(root: Path, relative: PurePosixPath, shown: str) -> Path:
    """Create the member's parent directories, refusing any that is a symlink (or not a directory)."""
    current = root
    for part in relative.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise UnsafeArchive(f"{shown!r}: its path goes through the symlink {part!r}; refusing to write through it")
        if not current.exists():
            current.mkdir()
        elif not current.is_dir():
            raise UnsafeArchive(f"{shown!r}: {part!r} on its path is not a directory")
    return current / relative.name


def _remove_existing(destination: Path, shown: str) -> None:
    """A later entry replaces an earlier file or link (never a directory), without following links."""
    if destination.is_symlink() or destination.is_file():
        destination.unlink()
    elif destination.exists():
        raise UnsafeArchive(f"{shown!r}: would replace a directory")


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file member always has content
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    descriptor = os.open(destination, flags, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        shutil.copyfileobj(source, out, BLOCK_SIZE)
        os.fchmod(out.fileno(), member.mode & PERMISSION_BITS)
