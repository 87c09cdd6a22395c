"""The records an SBOM is made of: packages found in a rootfs, the OS, and what could not be read."""

from __future__ import annotations

from dataclasses import dataclass, field

MEDIA_TYPE = "application/vnd.cyclonedx+json"
PREDICATE_TYPE = "https://cyclonedx.org/bom"  # in-toto's predicate type for a CycloneDX document


@dataclass(frozen=True)
class Package:
    """One installed package, as its package manager's database records it."""

    ecosystem: str  # the purl type: deb, apk, rpm, pypi, conda, cran
    name: str
    version: str
    path: str  # the file of the rootfs it was read from
    licenses: tuple[str, ...] = ()  # as declared: one SPDX expression, or several names
    qualifiers: tuple[tuple[str, str], ...] = ()  # purl qualifiers known from the record itself (arch, ...)


@dataclass(frozen=True)
class OperatingSystem:
    """What etc/os-release (or usr/lib/os-release) says."""

    id: str
    version_id: str = ""
    name: str = ""
    pretty_name: str = ""

    @property
    def distro(self) -> str:
        """The purl `distro` qualifier: debian-12, alpine-3.19."""
        return f"{self.id}-{self.version_id}" if self.version_id else self.id


@dataclass
class Findings:
    """Everything one rootfs yielded: packages, its OS, and one line per file that could not be used."""

    packages: list[Package] = field(default_factory=list)
    os: OperatingSystem | None = None
    warnings: list[str] = field(default_factory=list)


def summary(packages: object, os_name: object) -> str:
    """"123 packages, debian 12": an SBOM's package count and OS as a manifest or a run records them (a
    manifest's values may be of any type: what is not an int, or a string, is left out); "" for neither."""
    parts = [f"{packages} packages"] if isinstance(packages, int) and not isinstance(packages, bool) else []
    parts += [os_name] if isinstance(os_name, str) else []
    return ", ".join(parts)
