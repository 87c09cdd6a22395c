"""Findings → a CycloneDX 1.6 JSON document, written by cyclonedx-python-lib, the same bytes for the same rootfs.

CycloneDX rather than SPDX: a component carries its purl and licences directly (SPDX 2.3 needs an
external reference and a relationship per package), the library ships the official 1.6 JSON schema
and a validator for it, and in-toto has a predicate type for it (`https://cyclonedx.org/bom`).

Determinism: the serial number is derived from the rootfs digest, there is no timestamp, components
are in the order of their bom-ref (their purl), and a package found at several paths is one component
with several locations.

Speed: the library writes the document's frame (its Bom, metadata and header) and the components
(its model, serialized by its own 1.6 view: once per shape of component and once per licence, see
_ComponentWriter), and this module joins the pieces. Handing the library a Bom of all the components instead costs about 1 ms per component
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
from cyclonedx.model.component_evidence import ComponentEvidence
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression, LicenseRepository
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema.schema import SchemaVersion1Dot6
from packageurl import PackageURL

from .model import Findings, OperatingSystem, Package

if TYPE_CHECKING:
    from cyclonedx.contrib.license.factories import LicenseFactory

    from .collect import Collector

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


def warm_up() -> None:
    """Makes a small document and drops it, so that the library's lazy parts (the frame's first making,
    a component's, the licence factory's SPDX list and expression parser) load now, in the renderer's
    idle time: `exchange export` starts it before it opens the image, and it then waits a quarter of a
    second for the first file. Loaded with the first licence instead, the factory (about 23 ms of CPU)
    ran beside the flattener, both cores busy."""
    builder = DocumentBuilder()
    builder.add([Package("deb", "warm-up", "1", "var/lib/dpkg/status")])
    builder.prepare(("GPL-2+",))  # not an SPDX id: the expression parser is built and tried
    builder.prepare(("MIT", "GPL-2+"))
    builder.finish([], "0" * 96)


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

    def prepare(self, licenses: tuple[str, ...]) -> None:
        """Makes the JSON of a licence list packages to come declare, now: a Debian image's packages declare
        some hundred lists in copyright files read before the status file, which comes last, and each
        new list costs the licence factory's parsing and the library's serialization."""
        self.writer.licenses_of(licenses)

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
        # A path's undecodable bytes are lone surrogates, which only a JSON string holds here: written as
        # the escape JSON has for them (the rows have them so already), the rest of the text unchanged.
        return f'{text},\n"components":[\n{joined}]}}\n'.encode("utf-8", "backslashreplace")

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
    library's 0.1 ms or more. The library serializes one component per shape (ecosystem, licensed or
    not, number of locations) whose strings are markers, and each licence once (`licenses_of`); a
    package's strings, JSON-escaped as the library's encoder escapes them, and its licences' JSON take
    the markers' places. So the library still writes every piece, its
    keys and their order; tests compare the result with components the library serialized whole. The
    location markers sort as the locations do (those are sorted first), so the library orders them alike."""

    def __init__(self) -> None:
        self.component = Component(name="-", bom_ref="-")
        self.templates: dict[tuple[str, bool, int], _Template | None] = {}
        self.licenses_json: dict[tuple[str, ...], str | None] = {}
        self.license_json: dict[License, str] = {}

    def package(self, purl: PackageURL, ref: str, packages: list[Package]) -> str:
        """`ref`: the purl's string, made once (a purl's normalization is a good part of the document's cost)."""
        first = min(packages, key=lambda package: package.path)
        locations = sorted({package.path for package in packages})
        licenses = self.licenses_of(first.licenses)
        shape = (first.ecosystem, licenses is not None, len(locations))
        template = self.templates[shape] if shape in self.templates else self._template(shape)
        if template is None:  # the library wrote a marker twice, or not at all: it writes this shape whole
            return self._serialized(first.ecosystem, licenses_of(first.licenses), ref, first.name, purl,
                                    first.version, locations)
        values = [json.dumps(ref), json.dumps(first.name), json.dumps(ref), json.dumps(first.version),
                  licenses or "", *(json.dumps(location) for location in locations)]  # in _Template's slot order
        pieces = []
        for literal, slot in template.parts:
            pieces += [literal, values[slot]]
        pieces.append(template.end)
        return "".join(pieces)

    def licenses_of(self, declared: tuple[str, ...]) -> str | None:
        """The JSON of a component's `licenses`, None for none, made once per list (a Debian image has a
        hundred or more, of a few dozen licences): the library's JSON of each licence, in the order the
        library's licence repository sorts them into, joined as the library's encoder joins a list."""
        if declared not in self.licenses_json:
            licenses = licenses_of(declared)
            if len(licenses) <= 1:  # one licence, or an expression, which stands alone
                self.licenses_json[declared] = self._one_license_json(licenses[0]) if licenses else None
            else:
                items = (self._one_license_json(license)[1:-1] for license in LicenseRepository(licenses))
                self.licenses_json[declared] = f"[{', '.join(items)}]"
        return self.licenses_json[declared]

    def _one_license_json(self, license: License) -> str:
        """The list of this one licence, as the library writes it."""
        if license not in self.license_json:
            self.license_json[license] = _licenses_json([license]) or ""
        return self.license_json[license]

    def _template(self, shape: tuple[str, bool, int]) -> _Template | None:
        ecosystem, licensed, count = shape
        ref, name, version = f"{_MARKER}ref", f"{_MARKER}name", f"{_MARKER}version"
        purl = PackageURL(type="exchange-marker", name="purl")
        licenses: list[License] = [DisjunctiveLicense(name=f"{_MARKER}licenses")] if licensed else []
        locations = [f"{_MARKER}location{index:06d}" for index in range(count)]
        text = self._serialized(ecosystem, licenses, ref, name, purl, version, locations)
        markers = [json.dumps(ref), json.dumps(name), json.dumps(purl.to_string()), json.dumps(version),
                   _licenses_json(licenses), *(json.dumps(location) for location in locations)]
        template = self.templates[shape] = _Template.split(text, markers)
        return template

    def _serialized(self, ecosystem: str, licenses: list[License], ref: str, name: str, purl: PackageURL,
                    version: str, locations: list[str]) -> str:
        """The library's JSON of one component, every field set again on the one Component reused: a new
        one makes ten sorted sets, most of them left empty."""
        component = self.component
        component.type = ComponentType.APPLICATION if ecosystem in _DISTRO_PACKAGES else ComponentType.LIBRARY
        component.name, component.version, component.purl = name, version, purl
        component.bom_ref.value = ref
        component.licenses = licenses
        # Properties rather than evidence occurrences: the library orders occurrences without a bom-ref by
        # object identity, which would change the bytes from run to run.
        component.properties = [
            Property(name="exchange:ecosystem", value=ecosystem),
            *(Property(name=LOCATION_PROPERTY, value=location) for location in locations)]
        return _json_of(component)


def _licenses_json(licenses: list[License]) -> str | None:
    """The library's JSON of a licence list, as a component's `licenses` holds it: a component's evidence
    is the smallest public model whose `licenses` the library serializes with the same helper."""
    if not licenses:
        return None
    evidence = ComponentEvidence(licenses=licenses)
    return json.dumps(json.loads(evidence.as_json(view_=SchemaVersion1Dot6))["licenses"])  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Template:
    """A component's JSON cut at its markers: each part is the literal text before a value and the value's
    slot (its index in the markers: bom-ref, name, purl, version, licences, locations), then the text after
    the last."""

    parts: tuple[tuple[str, int], ...]
    end: str

    @classmethod
    def split(cls, text: str, markers: list[str | None]) -> _Template | None:
        """None unless each marker (JSON text; None for a slot this shape lacks) is found exactly once.
        The template holds markers and constants only, so this is a check on the library, not on data."""
        present = [(slot, marker) for slot, marker in enumerate(markers) if marker is not None]
        if any(text.count(marker) != 1 for _, marker in present):
            return None
        parts, start = [], 0
        for position, slot, marker in sorted((text.find(marker), slot, marker) for slot, marker in present):
            parts.append((text[start:position], slot))
            start = position + len(marker)
        return cls(tuple(parts), text[start:])


_MARKER = "\x01exchange-marker-"  # starts each marker string but the purl's


def _json_of(component: Component) -> str:
    return str(component.as_json(view_=SchemaVersion1Dot6))  # type: ignore[attr-defined]


def _os_component(os: OperatingSystem, ref: str) -> Component:
    return Component(type=ComponentType.OPERATING_SYSTEM, name=os.id, version=os.version_id or None,
                     bom_ref=ref, description=os.pretty_name or os.name or None)


def licenses_of(declared: Iterable[str]) -> list[License]:
    """One declared licence: an SPDX id or expression when it parses as one, else a name. Several: each
    an id or a name (CycloneDX allows an expression only alone)."""
    return list(_licenses(tuple(text.strip()[:1000] for text in declared if text.strip())))


def _licenses(declared: tuple[str, ...]) -> tuple[License, ...]:
    if len(declared) == 1:
        return (_license(declared[0]),)
    made = [_license(text) for text in declared]
    return tuple(DisjunctiveLicense(name=text) if isinstance(license, LicenseExpression) else license
                 for text, license in zip(declared, made, strict=True))


@functools.lru_cache(maxsize=4096)
def _license(declared: str) -> License:
    """Cached by the string: the lists of an image's packages share a few licences, and parsing an
    expression is slow."""
    return _factory().make_from_string(declared)


@functools.cache
def _factory() -> LicenseFactory:
    """Imported on first use: it loads SPDX's licence list and an expression parser, which a rootfs whose
    databases declare no licence (dpkg's) never needs."""
    from cyclonedx.contrib.license.factories import LicenseFactory

    return LicenseFactory()


class DocumentHere:
    """A collector and the document's builder in one process: the renderer's child makes its document
    through one (child.py), and so does an export of a small rootfs with no child started early, its
    export being shorter than the child's start (0.1 s of CPU). `watch` is the collector (the
    flattener's rootfs.flatten.Watch), which tells this object of each finding as it is read."""

    def __init__(self) -> None:
        from .collect import Collector

        self.builder = DocumentBuilder()
        self.collector = Collector(self)
        self.written: bytes | None = None

    def watch(self) -> Collector:
        return self.collector

    def found(self, packages: list[Package]) -> None:
        self.builder.add(packages)

    def os_chosen(self, os: OperatingSystem | None) -> None:
        self.builder.choose_os(os)

    def licenses_declared(self, licenses: tuple[str, ...]) -> None:
        self.builder.prepare(licenses)

    def finish(self, rootfs_sha384: str) -> None:
        findings = self.collector.finish()
        self.builder.choose_os(findings.os)
        self.written = self.builder.finish(findings.warnings, rootfs_sha384)

    def document(self) -> bytes:
        assert self.written is not None, "document() before finish()"
        return self.written
