"""Findings → a CycloneDX 1.6 JSON document, written by cyclonedx-python-lib, the same bytes for the same rootfs.

CycloneDX rather than SPDX: a component carries its purl and licences directly (SPDX 2.3 needs an
external reference and a relationship per package), the library ships the official 1.6 JSON schema
and a validator for it, and in-toto has a predicate type for it (`https://cyclonedx.org/bom`).

Determinism: the serial number is derived from the rootfs digest, there is no timestamp, components
are in the order of their bom-ref (their purl), and a package found at several paths is one component
with several locations.

Speed: the library writes the document's frame (its Bom, metadata and header) and each component
(its model, serialized by its own 1.6 view), and this module joins them. Handing the library a Bom
of all the components instead costs about 1 ms per component (its sorted set compares components
by a tuple of every field, and its validation registers each one's dependencies by a linear scan:
quadratic), against the 5% of the export the SBOM may cost.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema.schema import SchemaVersion1Dot6
from packageurl import PackageURL

from .model import Findings, OperatingSystem, Package

if TYPE_CHECKING:
    from cyclonedx.contrib.license.factories import LicenseFactory

SPEC_VERSION = "1.6"
WARNING_PROPERTY = "exchange:sbom:warning"
LOCATION_PROPERTY = "exchange:location"  # the database file of the rootfs that lists the package
ROOTFS_REF = "rootfs"
# The purl namespace of an ecosystem whose packages come from one place, whatever the distribution.
_NAMESPACE_OF = {"pypi": None, "conda": None, "cran": None}
_DISTRO_PACKAGES = ("deb", "apk", "rpm")
_HEADER = ("$schema", "bomFormat", "specVersion", "serialNumber", "version", "metadata")


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
    components = [_component(purl, ref, packages) for ref, (purl, packages) in _by_purl(findings).items()]
    if findings.os is not None:
        components.append(_os_component(findings.os))
    components.sort(key=lambda component: str(component.bom_ref.value))
    frame: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    header = {key: frame.pop(key) for key in _HEADER if key in frame}
    # Compact, one component a line: each is the library's own serialization, joined in bom-ref order.
    text = json.dumps(header | frame, ensure_ascii=False, separators=(",", ":"))[:-1]
    rows = ",\n".join(component.as_json(view_=SchemaVersion1Dot6)  # type: ignore[attr-defined]
                      for component in components)
    return f'{text},\n"components":[\n{rows}]}}\n'.encode()


def _by_purl(findings: Findings) -> dict[str, tuple[PackageURL, list[Package]]]:
    grouped: dict[str, tuple[PackageURL, list[Package]]] = {}
    for package in findings.packages:
        purl = purl_of(package, findings.os)
        grouped.setdefault(purl.to_string(), (purl, []))[1].append(package)
    return grouped


def _component(purl: PackageURL, ref: str, packages: list[Package]) -> Component:
    """`ref`: the purl's string, made once (a purl's normalization is a good part of the document's cost)."""
    first = min(packages, key=lambda package: package.path)
    locations = sorted({package.path for package in packages})
    return Component(
        type=ComponentType.LIBRARY if first.ecosystem not in _DISTRO_PACKAGES else ComponentType.APPLICATION,
        name=first.name, version=first.version, purl=purl, bom_ref=ref,
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
    return list(_licenses(tuple(text.strip()[:1000] for text in declared if text.strip())))


@functools.lru_cache(maxsize=4096)
def _licenses(declared: tuple[str, ...]) -> tuple[License, ...]:
    """Cached: most packages of an image declare one of a few licences, and parsing an expression is slow."""
    factory = _factory()
    if len(declared) == 1:
        return (factory.make_from_string(declared[0]),)
    licenses: list[License] = []
    for text in declared:
        made = factory.make_from_string(text)
        licenses.append(DisjunctiveLicense(name=text) if isinstance(made, LicenseExpression) else made)
    return tuple(licenses)


@functools.cache
def _factory() -> LicenseFactory:
    """Imported on first use: it loads SPDX's licence list and an expression parser, which a rootfs whose
    databases declare no licence (dpkg's) never needs."""
    from cyclonedx.contrib.license.factories import LicenseFactory

    return LicenseFactory()
