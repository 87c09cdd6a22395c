"""The collector the flattener shows a few files to (see rootfs.flatten.Watch): its gate (gate.py) picks
the package databases out of the entry stream by path alone and takes each within a size cap; the
collector parses each at once, so nothing but the findings stays in memory. In an export whose document
a child makes, the gate stays in the exporting process and the collector is the child's (renderer.py).

What it looks for (gate.kind_of; the last name first, one dict lookup per entry, the cheap test):
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
from .gate import CAPS, MAX_BYTES, MAX_FILES, WARNING_LIMIT, Gate, kind_of
from .model import Findings, OperatingSystem, Package

__all__ = ["CAPS", "MAX_BYTES", "MAX_FILES", "MAX_PACKAGES", "Collector", "Listener", "kind_of"]

# Packages listed for one rootfs: a real one has a few thousand; a hostile one could declare millions in
# the gate's 2 GiB, each a component of the document and of every process's memory that reads it.
MAX_PACKAGES = 100_000
# Databases that list many packages, parsed up to a limit; the others describe one package each.
_LISTS: Final[dict[str, Callable[[str, bytes, int], list[Package]]]] = {
    "dpkg": dpkg.parse, "apk": apk.parse, "rpm": rpm.parse}
_ONES: Final[dict[str, Callable[[str, bytes], list[Package]]]] = {
    "python": python.parse, "conda": conda.parse, "cran": cran.parse}


class Listener(Protocol):
    """Who is told of the findings as they come (the document's builder, in another process)."""

    def found(self, packages: list[Package], /) -> None: ...

    def os_chosen(self, os: OperatingSystem | None, /) -> None: ...

    def licenses_declared(self, licenses: tuple[str, ...], /) -> None:
        """Packages to come may declare these (a Debian package's, from its copyright file)."""


class Collector(Gate):
    """A Gate that parses each file it reads at once (rootfs.flatten.Watch); `findings` holds the result
    once the flattener is done, and a `listener` hears of each file's packages and of the OS as soon as
    they are read. Fed by a renderer's Gate instead (its child), it is told `read` and `warn` directly."""

    def __init__(self, listener: Listener | None = None) -> None:
        super().__init__()
        self.listener = listener
        self.findings = Findings()
        self.os_by_path: dict[str, OperatingSystem] = {}
        self.debian_licenses: dict[str, tuple[str, ...]] = {}  # by package, from usr/share/doc/*/copyright
        self.too_many = False  # MAX_PACKAGES reached, and said

    def read(self, kind: str, path: str, data: bytes) -> None:
        try:
            found = self._parsed(kind, path, data)
        except (Unreadable, ValueError, RecursionError, struct.error) as error:
            self.warn(str(error) if isinstance(error, Unreadable) else f"{path}: unreadable ({error})")
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

    def warn(self, line: str) -> None:
        self.findings.warnings.append(line[:WARNING_LIMIT])  # every warning, the gate's and the parsers', cut here

    def _parsed(self, kind: str, path: str, data: bytes) -> (
            OperatingSystem | debian_copyright.DeclaredLicenses | list[Package]):
        if kind == "os":
            return os_release.parse(path, data)
        if kind == "dpkg-copyright":
            return debian_copyright.parse(path, data)
        room = MAX_PACKAGES - len(self.findings.packages)
        packages = _LISTS[kind](path, data, room + 1) if kind in _LISTS else _ONES[kind](path, data)
        if len(packages) > room:
            packages = packages[:room]
            if not self.too_many:
                self.too_many = True
                self.warn(f"{path}: the rootfs lists more than {MAX_PACKAGES:,} packages; the rest are not in the SBOM")
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
