"""Findings → a CycloneDX 1.6 JSON document, written by cyclonedx-python-lib, the same bytes for the same rootfs.

CycloneDX rather than SPDX: a component carries its purl and licences directly (SPDX 2.3 needs an
external reference and a relationship per package), the library ships the official 1.6 JSON schema
and a validator for it, and in-toto has a predicate type for it (`https://cyclonedx.org/bom`).

Determinism: the serial number is derived from the rootfs digest, there is no timestamp, the library
sorts components, and a package found at several paths is one component with several locations.
"""

from __future__ import annotations

import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterable

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from .model import Findings, OperatingSystem, Package

SPEC_VERSION = "1.6"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
PREDICATE_TYPE = "https://cyclonedx.org/bom"  # in-toto's predicate type for a CycloneDX document
WARNING_PROPERTY = "exchange:sbom:warning"
LOCATION_PROPERTY = "exchange:location"  # the database file of the rootfs that lists the package
ROOTFS_REF = "rootfs"
# The purl namespace of an ecosystem whose packages come from one place, whatever the distribution.
_NAMESPACE_OF = {"pypi": None, "conda": None, "cran": None}
_DISTRO_PACKAGES = ("deb", "apk", "rpm")
_FACTORY = LicenseFactory()


def purl_of(package: Package, os: OperatingSystem | None) -> PackageURL:
    """The package URL: a distribution package is namespaced by the OS (pkg:deb/debian/...), with distro=."""
    qualifiers = dict(package.qualifiers)
    namespace = None
    if package.ecosystem in _DISTRO_PACKAGES and os is not None:
        namespace = os.id
        qualifiers["distro"] = os.distro
    return PackageURL(type=package.ecosystem, namespace=namespace, name=package.name, version=package.version,
                      qualifiers=qualifiers or None)


def render(findings: Findings, rootfs_sha384: str) -> bytes:
    """The CycloneDX JSON document of `findings`, about the rootfs whose compressed bytes have `rootfs_sha384` (hex)."""
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"sha384:{rootfs_sha384}"))
    # The library's default is now, which would change the bytes every run; the schema lets it be absent.
    bom.metadata.timestamp = None  # type: ignore[assignment]
    bom.metadata.component = Component(
        type=ComponentType.FILE, name="rootfs", bom_ref=ROOTFS_REF,
        hashes=[HashType(alg=HashAlgorithm.SHA_384, content=rootfs_sha384)])
    bom.metadata.properties.update(Property(name=WARNING_PROPERTY, value=line) for line in findings.warnings)
    if findings.os is not None:
        bom.components.add(_os_component(findings.os))
    for purl, packages in _by_purl(findings).items():
        bom.components.add(_component(purl, packages))
    with warnings.catch_warnings():
        # The library warns that the rootfs has no dependency graph: none is claimed, so it is not incomplete.
        warnings.simplefilter("ignore", UserWarning)
        text = JsonV1Dot6(bom).output_as_string(indent=1)
    return text.encode() + b"\n"


def _by_purl(findings: Findings) -> dict[str, list[Package]]:
    grouped: dict[str, list[Package]] = defaultdict(list)
    for package in findings.packages:
        grouped[purl_of(package, findings.os).to_string()].append(package)
    return grouped


def _component(purl: str, packages: list[Package]) -> Component:
    first = min(packages, key=lambda package: package.path)
    locations = sorted({package.path for package in packages})
    return Component(
        type=ComponentType.LIBRARY if first.ecosystem not in _DISTRO_PACKAGES else ComponentType.APPLICATION,
        name=first.name, version=first.version, purl=PackageURL.from_string(purl), bom_ref=purl,
        licenses=licenses_of(first.licenses),
        # Properties rather than evidence occurrences: the library orders occurrences without a bom-ref by
        # object identity, which would change the bytes from run to run.
        properties=[Property(name="exchange:ecosystem", value=first.ecosystem),
                    *(Property(name=LOCATION_PROPERTY, value=location) for location in locations)])


def _os_component(os: OperatingSystem) -> Component:
    return Component(type=ComponentType.OPERATING_SYSTEM, name=os.id, version=os.version_id or None,
                     bom_ref=f"os:{os.distro}", description=os.pretty_name or os.name or None)


def licenses_of(declared: Iterable[str]) -> list[License]:
    """One declared licence: an SPDX id or expression when it parses as one, else a name. Several: each
    an id or a name (CycloneDX allows an expression only alone)."""
    declared = [text.strip()[:1000] for text in declared if text.strip()]
    if len(declared) == 1:
        return [_FACTORY.make_from_string(declared[0])]
    licenses: list[License] = []
    for text in declared:
        made = _FACTORY.make_from_string(text)
        licenses.append(DisjunctiveLicense(name=text) if isinstance(made, LicenseExpression) else made)
    return licenses
