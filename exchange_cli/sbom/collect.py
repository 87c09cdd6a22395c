"""The collector the flattener shows a few files to (see rootfs.flatten.Watch): it picks the package
databases out of the entry stream by path alone, takes each within a size cap, and parses it at once,
so nothing but the findings stays in memory.

What it looks for, by the path's last name first (one dict lookup per entry, the cheap test):
  var/lib/dpkg/status, var/lib/dpkg/status.d/*           dpkg (status.d: distroless images)
  lib/apk/db/installed                                   apk
  {var/lib/rpm,usr/lib/sysimage/rpm}/rpmdb.sqlite        rpm (Packages, Packages.db: unsupported, named)
  */*.dist-info/METADATA, */*.egg-info/PKG-INFO, *.egg-info   Python distributions
  */conda-meta/*.json                                    conda
  */<package>/DESCRIPTION                                R (installed: has `Built:`)
  etc/os-release, usr/lib/os-release                     the OS (etc/ wins, as the spec says)
  usr/share/doc/<package>/copyright                      a Debian package's licences

The canonical order the flattener shows files in puts usr/share/doc/ before var/lib/dpkg/, so a
package's licences are known when its status record is read.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Final, Protocol

from . import apk, conda, cran, debian_copyright, dpkg, os_release, python, rpm
from .errors import Unreadable
from .model import Findings, OperatingSystem, Package

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
_SUFFIXES: Final = (".json", ".egg-info")
_PARSERS: Final[dict[str, Callable[[str, bytes], list[Package]]]] = {
    "dpkg": dpkg.parse, "apk": apk.parse, "rpm": rpm.parse, "python": python.parse, "conda": conda.parse,
    "cran": cran.parse}


def kind_of(directory: str, name: str) -> str | None:
    """Which database a file is, from its directory (ending in "/", or "" at the root) and name."""
    kind = _BY_NAME.get(name)
    if kind is None:
        if name.endswith(_SUFFIXES):
            if name.endswith(".egg-info"):
                return "python"  # a distutils egg-info file: PKG-INFO's format
            return "conda" if directory.endswith("conda-meta/") else None
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


class Listener(Protocol):
    """Who is told of the findings as they come (the document's builder, in another process)."""

    def found(self, packages: list[Package], /) -> None: ...

    def os_chosen(self, os: OperatingSystem | None, /) -> None: ...

    def licenses_declared(self, licenses: tuple[str, ...], /) -> None:
        """Packages to come may declare these (a Debian package's, from its copyright file)."""


class Collector:
    """Implements rootfs.flatten.Watch; `findings` holds the result once the flattener is done, and a
    `listener` hears of each file's packages and of the OS as soon as they are read."""

    # What `kind_of` can say yes to, for the flattener's cheap test before it asks `wants`.
    names = frozenset(_BY_NAME)
    suffixes = _SUFFIXES
    directories = frozenset({STATUS_D})

    def __init__(self, listener: Listener | None = None) -> None:
        self.listener = listener
        self.findings = Findings()
        self.files = self.bytes = 0
        self.full = False
        self.os_by_path: dict[str, OperatingSystem] = {}
        self.debian_licenses: dict[str, tuple[str, ...]] = {}  # by package, from usr/share/doc/*/copyright

    def wants(self, directory: str, name: str) -> int:
        kind = kind_of(directory, name)
        if kind is None:
            return 0
        if kind == "rpm-old":
            self.findings.warnings.append(rpm.unsupported(directory + name))
            return 0
        if self.files >= MAX_FILES or self.bytes >= MAX_BYTES:
            if not self.full:
                self.full = True
                self._warn(f"{directory}{name}: more than {MAX_FILES:,} package files or {MAX_BYTES:,} bytes "
                           "read; it and the rest are not")
            return 0
        return CAPS[kind]

    def take(self, path: str, data: bytes | None, size: int) -> None:
        directory, _, name = path.rpartition("/")
        kind = kind_of(directory + "/" if directory else "", name)
        if kind is None:
            return
        if data is None:
            self._warn(f"{path}: {size:,} bytes, more than the {CAPS[kind]:,} a {kind} record may hold; not read")
            return
        self.files += 1
        self.bytes += len(data)
        try:
            found = self._parsed(kind, path, data)
        except (Unreadable, ValueError, RecursionError, struct.error) as error:
            self._warn(str(error) if isinstance(error, Unreadable) else f"{path}: unreadable ({error})")
            return
        if isinstance(found, OperatingSystem):
            self.os_by_path[path] = found
            if self.listener is not None:
                self.listener.os_chosen(self._chosen_os())
        elif isinstance(found, debian_copyright.DeclaredLicenses):
            self.debian_licenses[found.package] = found.licenses
            if found.licenses and self.listener is not None:
                self.listener.licenses_declared(found.licenses)
        elif found:
            self.findings.packages.extend(found)
            if self.listener is not None:
                self.listener.found(found)

    def _parsed(self, kind: str, path: str, data: bytes) -> (
            OperatingSystem | debian_copyright.DeclaredLicenses | list[Package]):
        if kind == "os":
            return os_release.parse(path, data)
        if kind == "dpkg-copyright":
            return debian_copyright.parse(path, data)
        packages = _PARSERS[kind](path, data)
        if kind == "dpkg":  # its licences, from the copyright file read before (see the module's docstring)
            return [dataclasses.replace(package, licenses=self.debian_licenses.get(package.name, ()))
                    for package in packages]
        return packages

    def finish(self) -> Findings:
        """The findings, with the OS chosen."""
        self.findings.os = self._chosen_os()
        return self.findings

    def _chosen_os(self) -> OperatingSystem | None:
        """etc/os-release, else usr/lib/os-release, as os-release(5) says."""
        return self.os_by_path.get("etc/os-release") or self.os_by_path.get("usr/lib/os-release")

    def _warn(self, line: str) -> None:
        self.findings.warnings.append(line[:500])
