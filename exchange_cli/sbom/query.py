"""Reading an SBOM back, and asking it for a package: what `exchange sbom` and `exchange packages` need.

Documents come from the bucket (anyone who can write there could have put one), so reading is forgiving:
whatever is not a component with a name is skipped, and `read` raises `Unreadable` only for a document
that is not CycloneDX JSON at all.

A package spec is `NAME`, `NAME<op>VERSION` (op: == != < <= > >=), or a purl (`pkg:pypi/torch`,
`pkg:deb/debian/openssl@3.0.11-1`), which also pins the ecosystem. Versions compare in the
ecosystem's own order where it matters most (Debian's for deb) and else by a generic order of
numeric and alphabetic runs, which agrees with PEP 440, semver and apk for ordinary versions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from packageurl import PackageURL

from .errors import Unreadable

_SPEC = re.compile(r"^(?P<name>[^<>=!\s]+)\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<version>[^<>=!\s]\S*))?$")
_OPERATORS: dict[str, Callable[[int], bool]] = {
    "==": lambda c: c == 0, "!=": lambda c: c != 0, "<": lambda c: c < 0, "<=": lambda c: c <= 0,
    ">": lambda c: c > 0, ">=": lambda c: c >= 0}


@dataclass(frozen=True)
class ComponentRow:
    ecosystem: str  # the purl type, or "os" for the operating system
    name: str
    version: str
    purl: str
    licenses: tuple[str, ...]


@dataclass(frozen=True)
class SbomSummary:
    components: list[ComponentRow]  # packages, sorted by ecosystem and name
    os: str | None  # "debian 12", from the operating-system component
    warnings: list[str]


def read(document: bytes) -> SbomSummary:
    try:
        data = json.loads(document)
    except (ValueError, RecursionError):
        raise Unreadable("not JSON") from None
    if not isinstance(data, dict) or data.get("bomFormat") != "CycloneDX":
        raise Unreadable("not a CycloneDX document (no bomFormat: CycloneDX)")
    rows, os_name = [], None
    for item in _list(data.get("components")):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        version = item.get("version") if isinstance(item.get("version"), str) else ""
        if item.get("type") == "operating-system":
            os_name = f"{item['name']} {version}".strip()
            continue
        purl = str(item["purl"]) if isinstance(item.get("purl"), str) else ""
        ecosystem = purl[4:].split("/", 1)[0] if purl.startswith("pkg:") else ""
        rows.append(ComponentRow(ecosystem, item["name"], str(version), str(purl), _licenses(item.get("licenses"))))
    warnings = [str(prop.get("value")) for prop in _list(_dict(data.get("metadata")).get("properties"))
                if isinstance(prop, dict) and prop.get("name") == "exchange:sbom:warning"]
    rows.sort(key=lambda row: (row.ecosystem, row.name.lower(), row.version))
    return SbomSummary(rows, os_name, warnings)


def _licenses(value: object) -> tuple[str, ...]:
    found = []
    for choice in _list(value):
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("expression"), str):
            found.append(choice["expression"])
        license_ = _dict(choice.get("license"))
        text = license_.get("id") or license_.get("name")
        if isinstance(text, str):
            found.append(text)
    return tuple(found)


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class PackageSpec:
    name: str
    ecosystem: str | None = None
    namespace: str | None = None
    operator: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> PackageSpec:
        """ValueError with a one-line reason for a spec that is neither form."""
        text = text.strip()
        if text.startswith("pkg:"):
            try:
                purl = PackageURL.from_string(text)
            except ValueError as error:
                raise ValueError(f"{text!r} is not a package URL ({error})") from None
            return cls(purl.name, purl.type, purl.namespace, "==" if purl.version else None, purl.version)
        match = _SPEC.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not NAME, NAME<op>VERSION (op: == != < <= > >=) or a purl (pkg:TYPE/NAME)")
        return cls(match["name"], None, None, match["op"], match["version"])

    def matches(self, row: ComponentRow) -> bool:
        if self.ecosystem is not None and row.ecosystem != self.ecosystem:
            return False
        if self.namespace is not None and f"pkg:{row.ecosystem}/{self.namespace}/" not in row.purl + "/":
            return False
        if _normal(row.name, row.ecosystem) != _normal(self.name, row.ecosystem):
            return False
        if self.operator is None or self.version is None:
            return True
        return _OPERATORS[self.operator](compare_versions(row.version, self.version, row.ecosystem))


def _normal(name: str, ecosystem: str) -> str:
    """Names as the ecosystem compares them: PyPI's are case-insensitive with -, _ and . alike (PEP 503)."""
    if ecosystem == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name.lower() if ecosystem in ("conda", "apk") else name


def compare_versions(left: str, right: str, ecosystem: str) -> int:
    """-1, 0 or 1."""
    if ecosystem == "deb":
        return _compare_debian(left, right)
    return _compare_runs(left, right)


def _compare_runs(left: str, right: str) -> int:
    a, b = _runs(left), _runs(right)
    for x, y in zip(a, b, strict=False):
        if x != y:
            if isinstance(x, int) and isinstance(y, int):
                return -1 if x < y else 1
            if isinstance(x, int):  # a number sorts after letters: 1.0 > 1.0rc1, 2.0.1 > 2.0a
                return 1
            if isinstance(y, int):
                return -1
            return -1 if x < y else 1
    if len(a) == len(b):
        return 0
    longer, sign = (a, 1) if len(a) > len(b) else (b, -1)
    extra = longer[min(len(a), len(b))]
    return sign if isinstance(extra, int) else -sign  # 1.0.1 > 1.0; 1.0rc1 < 1.0


def _runs(version: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.findall(r"\d+|[A-Za-z]+", version)]


def _compare_debian(left: str, right: str) -> int:
    """deb-version(7)'s order: epoch, then upstream version and revision by dpkg's algorithm."""
    le, lu, lr = _debian_parts(left)
    re_, ru, rr = _debian_parts(right)
    if le != re_:
        return -1 if le < re_ else 1
    return _dpkg_compare(lu, ru) or _dpkg_compare(lr, rr)


def _debian_parts(version: str) -> tuple[int, str, str]:
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return (int(epoch) if epoch.isdigit() else 0), upstream, revision


def _dpkg_order(character: str) -> int:
    if character == "~":
        return -1
    if character.isalpha():
        return ord(character)
    return ord(character) + 256


def _dpkg_compare(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _dpkg_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _dpkg_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if na != nb:
            return -1 if na < nb else 1
    return 0
