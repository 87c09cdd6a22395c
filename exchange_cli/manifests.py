"""Strongly-versioned manifests: ``manifests/<org>/<org>-<name>-<algo>-<hex>.json``.

The layout and top-level shape are those existing exchanges already use, so their manifests are read
as they are: ``{"gear"|"boutique": <spec>, "exchange": {...}, "invocation-schema": {...}}``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .specs import SpecKind


@dataclass(frozen=True)
class VersionKey:
    org: str
    kind: SpecKind
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.org}/{self.name} {self.version}"


@dataclass(frozen=True)
class ProcessedManifest:
    path: Path
    key: VersionKey
    spec: Any
    exchange: dict[str, Any]


def manifest_name(artifact_base: str, rootfs_hash: str) -> str:
    """``<org>-<name>-sha384-<hex>.json`` from ``sha384:<hex>`` (or ``sha256:`` for image-delivered gears)."""
    algorithm, hex_digest = rootfs_hash.split(":", 1)
    return f"{artifact_base}-{algorithm}-{hex_digest}.json"


def embedded_spec(document: Any) -> tuple[SpecKind, Any] | None:
    if not isinstance(document, dict):
        return None
    for kind in SpecKind:
        if isinstance(document.get(kind.value), dict):
            return kind, document[kind.value]
    return None


def read_manifest(path: Path, org: str) -> ProcessedManifest | None:
    """A manifest's identity; None for files that are not manifests of a known shape."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    found = embedded_spec(document)
    if found is None:
        return None
    kind, spec = found
    name, version = spec.get("name"), spec.get(kind.version_key)
    if not isinstance(name, str) or not isinstance(version, str):
        return None
    exchange = document.get("exchange") if isinstance(document.get("exchange"), dict) else {}
    return ProcessedManifest(path, VersionKey(org, kind, name, version), spec, exchange)


class ManifestIndex:
    """Every processed org/kind/name/version, read once per run."""

    def __init__(self, manifests: list[ProcessedManifest]) -> None:
        self.manifests = manifests
        self._by_key: dict[VersionKey, list[ProcessedManifest]] = defaultdict(list)
        for manifest in manifests:
            self._by_key[manifest.key].append(manifest)

    @classmethod
    def load(cls, manifests_dir: Path) -> "ManifestIndex":
        found: list[ProcessedManifest] = []
        if manifests_dir.is_dir():
            for path in sorted(manifests_dir.glob("*/*.json")):
                manifest = read_manifest(path, path.parent.name)
                if manifest is not None:
                    found.append(manifest)
        return cls(found)

    def for_key(self, key: VersionKey) -> list[ProcessedManifest]:
        return self._by_key.get(key, [])


@dataclass(frozen=True)
class ExchangeRecord:
    """What a consumer needs to trust and trace an artifact: the ``"exchange"`` block of a manifest."""

    git_commit: str
    rootfs_hash: str
    rootfs_url: str
    rootfs_size: int
    image: str
    image_digest_reference: str | None
    image_config_digest: str
    platform: str
    # Only present when used, so manifests without a mirror or skipped checks keep their shape.
    mirrored_image: str | None = None  # <mirror>/<org>-<name>@sha256:<digest>
    skipped_checks: tuple[str, ...] | None = None  # conformance rule ids skipped with --skip-check
    # Fields a publish hook adds (process/publish.py's PublishHook.manifest_fields), after the others.
    extra: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        # The first three keys are those existing exchanges' manifests already carry.
        optional = {"mirrored-image": self.mirrored_image,
                    "skipped-checks": list(self.skipped_checks) if self.skipped_checks is not None else None}
        return {
            "git-commit": self.git_commit,
            "rootfs-hash": self.rootfs_hash,
            "rootfs-url": self.rootfs_url,
            "rootfs-size": self.rootfs_size,
            "image": self.image,
            "image-digest-reference": self.image_digest_reference,
            "image-config-digest": self.image_config_digest,
            "platform": self.platform,
        } | {key: value for key, value in optional.items() if value is not None} | dict(self.extra or {})


def build_manifest(kind: SpecKind, spec: dict[str, Any], record: ExchangeRecord,
                   invocation_schema: dict[str, Any]) -> dict[str, Any]:
    return {kind.value: spec, "exchange": record.as_json(), "invocation-schema": invocation_schema}


def manifest_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: a reader sees the old file or the whole new one."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
