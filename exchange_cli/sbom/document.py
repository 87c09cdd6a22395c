"""Findings → a CycloneDX 1.6 JSON document, written by cyclonedx-python-lib, the same bytes for the same rootfs.

CycloneDX rather than SPDX: a component carries its purl and licences directly (SPDX 2.3 needs an
external reference and a relationship per package), the library ships the official 1.6 JSON schema
and a validator for it, and in-toto has a predicate type for it (`https://cyclonedx.org/bom`).

Determinism: the serial number is derived from the rootfs digest, there is no timestamp, components
are in the order of their bom-ref (their purl), and a package found at several paths is one component
with several locations.

Speed: the library writes the document's frame (its Bom, metadata and header) and the components
(its model, serialized by its own 1.6 view, once per shape: see _ComponentWriter), and this module
joins them. Handing the library a Bom of all the components instead costs about 1 ms per component
(its sorted set compares components by a tuple of every field, and its validation registers each
one's dependencies by a linear scan: quadratic), and a new Component per package 0.1 ms, against
the 5% of the export the SBOM may cost. An export builds the document in a child process as the
packages are found (renderer.py).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
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
    builder = DocumentBuilder()
    builder.choose_os(findings.os)
    builder.add(findings.packages)
    return builder.finish(findings.warnings, rootfs_sha384)


class DocumentBuilder:
    """The document made while the packages are found: each package's component is serialized when it
    comes (again when another path lists the same package), so `finish` has only the frame left to write.

    The OS names a distribution package's purl. The flattener's canonical order shows etc/ and usr/lib/
    (os-release) before var/, lib/apk/ and usr/lib/sysimage/ (the package databases), so the OS is
    known first; when it changes after all, every component is made again with the new one."""

    def __init__(self) -> None:
        self.os: OperatingSystem | None = None
        self.packages: list[Package] = []
        self.groups: dict[str, tuple[PackageURL, list[Package]]] = {}  # by purl string, the bom-ref
        self.rows: dict[str, str] = {}  # each component's JSON, by bom-ref
        self.writer = _ComponentWriter()

    def choose_os(self, os: OperatingSystem | None) -> None:
        if os == self.os:
            return
        self.os = os
        if any(package.ecosystem in _DISTRO_PACKAGES for package in self.packages):
            self.groups, self.rows = {}, {}
            self._place(self.packages)

    def add(self, packages: Iterable[Package]) -> None:
        packages = list(packages)
        self.packages.extend(packages)
        self._place(packages)

    def finish(self, warnings: Iterable[str], rootfs_sha384: str) -> bytes:
        """The whole document: the frame (serial, metadata, warnings) and the components in bom-ref order."""
        bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"sha384:{rootfs_sha384}"))
        # The library's default is now, which would change the bytes every run; the schema lets it be absent.
        bom.metadata.timestamp = None  # type: ignore[assignment]
        bom.metadata.component = Component(
            type=ComponentType.FILE, name="rootfs", bom_ref=ROOTFS_REF,
            hashes=[HashType(alg=HashAlgorithm.SHA_384, content=rootfs_sha384)])
        bom.metadata.properties.update(Property(name=WARNING_PROPERTY, value=line) for line in warnings)
        rows = dict(self.rows)
        if self.os is not None:
            os_ref = f"os:{self.os.distro}"
            rows[os_ref] = _json_of(_os_component(self.os, os_ref))
        frame: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
        header = {key: frame.pop(key) for key in _HEADER if key in frame}
        # Compact, one component a line: each is the library's own serialization, joined in bom-ref order.
        text = json.dumps(header | frame, ensure_ascii=False, separators=(",", ":"))[:-1]
        joined = ",\n".join(rows[ref] for ref in sorted(rows))
        return f'{text},\n"components":[\n{joined}]}}\n'.encode()

    def _place(self, packages: list[Package]) -> None:
        """Each package into its component (one per purl), whose JSON is made again."""
        changed: set[str] = set()
        for package in packages:
            purl = purl_of(package, self.os)
            ref = purl.to_string()  # made once: a purl's normalization is a good part of the document's cost
            self.groups.setdefault(ref, (purl, []))[1].append(package)
            changed.add(ref)
        for ref in changed:
            purl, grouped = self.groups[ref]
            self.rows[ref] = self.writer.package(purl, ref, grouped)


class _ComponentWriter:
    """Each package's component as the library serializes it, at a few microseconds rather than the
    library's 0.1 ms: the library serializes one component per shape (ecosystem, licences, number of
    locations) whose strings are markers, and each package's strings, JSON-escaped as the library's
    encoder escapes them, take the markers' places. The library still decides every key, its order and
    the licences' form; tests compare the output with components the library serialized whole. The
    location markers sort as the locations do (those are sorted first), so the library orders them alike."""

    def __init__(self) -> None:
        self.component = Component(name="-", bom_ref="-")
        self.templates: dict[tuple[str, tuple[str, ...], int], _Template | None] = {}

    def package(self, purl: PackageURL, ref: str, packages: list[Package]) -> str:
        """`ref`: the purl's string, made once (a purl's normalization is a good part of the document's cost)."""
        first = min(packages, key=lambda package: package.path)
        locations = sorted({package.path for package in packages})
        shape = (first.ecosystem, first.licenses, len(locations))
        template = self.templates[shape] if shape in self.templates else self._template(shape)
        if template is None:  # a licence that holds a marker: this shape is the library's to write whole
            return self._serialized(first.ecosystem, first.licenses, ref, first.name, purl, first.version, locations)
        values = [ref, first.name, ref, first.version, *locations]  # bom-ref, name, purl, version, locations
        pieces = []
        for literal, slot in template.parts:
            pieces += [literal, json.dumps(values[slot])]
        pieces.append(template.end)
        return "".join(pieces)

    def _template(self, shape: tuple[str, tuple[str, ...], int]) -> _Template | None:
        ecosystem, licenses, count = shape
        ref, name, version = f"{_MARKER}ref", f"{_MARKER}name", f"{_MARKER}version"
        purl = PackageURL(type="exchange-marker", name="purl")
        locations = [f"{_MARKER}location{index:06d}" for index in range(count)]
        text = self._serialized(ecosystem, licenses, ref, name, purl, version, locations)
        markers = [ref, name, purl.to_string(), version, *locations]
        template = self.templates[shape] = _Template.split(text, [json.dumps(marker) for marker in markers])
        return template

    def _serialized(self, ecosystem: str, licenses: tuple[str, ...], ref: str, name: str, purl: PackageURL,
                    version: str, locations: list[str]) -> str:
        """The library's JSON of one component, every field set again on the one Component reused: a new
        one makes ten sorted sets, most of them left empty."""
        component = self.component
        component.type = ComponentType.APPLICATION if ecosystem in _DISTRO_PACKAGES else ComponentType.LIBRARY
        component.name, component.version, component.purl = name, version, purl
        component.bom_ref.value = ref
        component.licenses = licenses_of(licenses)
        # Properties rather than evidence occurrences: the library orders occurrences without a bom-ref by
        # object identity, which would change the bytes from run to run.
        component.properties = [
            Property(name="exchange:ecosystem", value=ecosystem),
            *(Property(name=LOCATION_PROPERTY, value=location) for location in locations)]
        return _json_of(component)


@dataclass(frozen=True)
class _Template:
    """A component's JSON cut at its markers: each part is the literal text before a value and the value's
    slot (its index in the markers), then the text after the last."""

    parts: tuple[tuple[str, int], ...]
    end: str

    @classmethod
    def split(cls, text: str, markers: list[str]) -> _Template | None:
        """None unless each marker (a JSON string, quotes included: it matches only a whole string value)
        is found exactly once; a licence named as one of them would be found too."""
        if any(text.count(marker) != 1 for marker in markers):
            return None
        found = sorted((text.find(marker), slot) for slot, marker in enumerate(markers))
        parts, start = [], 0
        for position, slot in found:
            parts.append((text[start:position], slot))
            start = position + len(markers[slot])
        return cls(tuple(parts), text[start:])


# Starts each marker but the purl's; a licence named as a marker is written by the library whole.
_MARKER = "\x01exchange-marker-"


def _json_of(component: Component) -> str:
    return str(component.as_json(view_=SchemaVersion1Dot6))  # type: ignore[attr-defined]


def _os_component(os: OperatingSystem, ref: str) -> Component:
    return Component(type=ComponentType.OPERATING_SYSTEM, name=os.id, version=os.version_id or None,
                     bom_ref=ref, description=os.pretty_name or os.name or None)


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
