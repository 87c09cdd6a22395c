"""Which files the SBOM's collector reads, by path alone, and within what caps (the rootfs.flatten.Watch
part of collect.Collector): the exporting process decides this as the flattener shows it the files, and
the files are parsed wherever the document is made (collect.Collector, here or in the renderer's child).

Light on purpose: no parser is imported, so an export whose document is made by the child never loads
them (rpm's sqlite3 among them).
"""

from __future__ import annotations

import os
from typing import Final

from . import debian_copyright

KiB, MiB = 1 << 10, 1 << 20
# Caps per file: a real database is far smaller; a larger file is named in the warnings, not read.
CAPS: Final = {"dpkg": 128 * MiB, "apk": 128 * MiB, "rpm": 256 * MiB, "python": 4 * MiB, "conda": 64 * MiB,
               "cran": 1 * MiB, "os": 64 * KiB, "dpkg-copyright": 4 * MiB}
MAX_FILES = 200_000  # files taken in all; more is not a real rootfs
MAX_BYTES = 2 << 30  # bytes taken in all
RPM_DIRECTORIES = ("var/lib/rpm/", "usr/lib/sysimage/rpm/")
STATUS_D = "var/lib/dpkg/status.d/"

_BY_NAME: Final = {"status": "dpkg", "installed": "apk", "rpmdb.sqlite": "rpm", "Packages": "rpm-old",
                   "Packages.db": "rpm-old", "METADATA": "python", "PKG-INFO": "python", "DESCRIPTION": "cran",
                   "os-release": "os", "copyright": "dpkg-copyright"}
_EGG_INFO, CONDA_META = ".egg-info", "conda-meta/"
_SUFFIXES: Final = (".json", _EGG_INFO)
RPM_UNSUPPORTED: Final = {"Packages": "Berkeley DB", "Packages.db": "ndb"}
WARNING_LIMIT = 500  # characters of one warning


def kind_of(directory: str, name: str) -> str | None:
    """Which database a file is, from its directory (ending in "/", or "" at the root) and name."""
    kind = _BY_NAME.get(name)
    if kind is None:
        if name.endswith(_SUFFIXES):
            if name.endswith(_EGG_INFO):
                return "python"  # a distutils egg-info file: PKG-INFO's format
            return "conda" if directory.endswith(CONDA_META) else None
        return "dpkg" if directory == STATUS_D and not name.endswith(".md5sums") else None
    if kind == "dpkg":
        return kind if directory == "var/lib/dpkg/" else None
    if kind == "apk":
        return kind if directory == "lib/apk/db/" else None
    if kind in ("rpm", "rpm-old"):
        return kind if directory in RPM_DIRECTORIES else None
    if kind == "python":
        suffix = ".dist-info/" if name == "METADATA" else ".egg-info/"
        return kind if directory.endswith(suffix) else None
    if kind == "os":
        return kind if directory in ("etc/", "usr/lib/") else None
    if kind == "dpkg-copyright":
        return kind if debian_copyright.package_of(directory) is not None else None
    return kind  # cran: the parser checks the directory against the record


def _kind_of_path(path: str) -> str | None:
    directory, _, name = path.rpartition("/")
    return kind_of(directory + "/" if directory else "", name)


def rpm_unsupported(path: str) -> str:
    kind = RPM_UNSUPPORTED[path.rsplit("/", 1)[-1]]
    return f"{path}: an rpm database in the {kind} format, which is not read; its packages are not listed"


class Gate:
    """The collector's side of rootfs.flatten.Watch: `wants` says how much of a file to read (0: none);
    `take` (its bytes) and `take_span` (where they lie, read here) count what was read; a file refused
    is a warning. What is read goes to `read`, and warnings to `warn`, in the order the files came:
    subclasses parse them (collect.Collector) or, in the renderer, send where the files lie instead."""

    # What `kind_of` can say yes to, for the flattener's cheap test before it asks `could_want`: a conda
    # record by its directory, not by ".json" (node_modules alone holds thousands of package.json).
    names = frozenset(_BY_NAME)
    suffixes = (_EGG_INFO,)
    directory_suffixes = (STATUS_D, CONDA_META)

    def __init__(self) -> None:
        self.files = self.bytes = 0
        self.full = False

    def could_want(self, directory: str, name: str) -> bool:
        """Whether `wants` would say anything of this file (a cap, or a warning): `kind_of` alone."""
        return kind_of(directory, name) is not None

    def wants(self, directory: str, name: str) -> int:
        kind = kind_of(directory, name)
        if kind is None:
            return 0
        if kind == "rpm-old":
            self.warn(rpm_unsupported(directory + name))
            return 0
        if self.files >= MAX_FILES or self.bytes >= MAX_BYTES:
            if not self.full:
                self.full = True
                self.warn(f"{directory}{name}: more than {MAX_FILES:,} package files or {MAX_BYTES:,} bytes "
                          "read; it and the rest are not")
            return 0
        return CAPS[kind]

    def take(self, path: str, data: bytes | None, size: int) -> None:
        """A file's data, or None with the size of one over its cap (a warning)."""
        if data is None:
            kind = _kind_of_path(path)
            if kind is not None:
                self.warn(f"{path}: {size:,} bytes, more than the {CAPS[kind]:,} a {kind} record may hold; not read")
        elif (kind := self._admit(path, len(data))) is not None:
            self.read(kind, path, data)

    def take_span(self, path: str, fd: int, offset: int, size: int) -> None:
        """A file within its cap, as `size` bytes at `offset` of the open file `fd` (a layer's tar): read here;
        the renderer's gate sends the place instead (renderer.py)."""
        self.take(path, os.pread(fd, size, offset), size)

    def all_shown(self) -> None:
        """Every file has been shown (the flattener's stream begins)."""

    def _admit(self, path: str, size: int) -> str | None:
        """The kind of a file to read, counted against the totals; None for a path `kind_of` refuses."""
        kind = _kind_of_path(path)
        if kind is not None:
            self.files += 1
            self.bytes += size
        return kind

    def read(self, kind: str, path: str, data: bytes) -> None:
        raise NotImplementedError

    def warn(self, line: str) -> None:
        """A line for the document's warnings, cut to WARNING_LIMIT where it is kept (collect.Collector)."""
        raise NotImplementedError
