"""Choosing one platform's manifest from a Docker manifest list or an OCI image index.

Platforms are compared the way Docker and containerd compare them: architecture aliases such as
``x86_64`` are normalised, and ARM's implied variants (``arm`` is ``arm/v7``, ``arm64`` is
``arm64/v8``) are filled in on both sides, so ``linux/arm64`` matches an entry that says
``linux/arm64/v8``. A requested variant must match; when none is requested (and none is implied), an
entry without a variant is preferred over one with a variant.
"""

from __future__ import annotations

from typing import Any

from .errors import ImageError
from .model import Platform

_ARCHITECTURE_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}
_IMPLIED_VARIANTS = {"arm64": "v8", "arm": "v7"}


def normalize(platform: Platform) -> Platform:
    architecture = _ARCHITECTURE_ALIASES.get(platform.architecture, platform.architecture)
    variant = platform.variant or _IMPLIED_VARIANTS.get(architecture)
    if platform.architecture == "armel" and platform.variant is None:
        variant = "v6"
    return Platform(platform.os.lower(), architecture, variant)


def satisfies(offered: Platform, wanted: Platform) -> bool:
    """Whether an image for `offered` serves a request for `wanted`: same os and architecture once
    aliases are resolved, and the same variant when the request names one."""
    have, want = normalize(offered), normalize(wanted)
    if (have.os, have.architecture) != (want.os, want.architecture):
        return False
    return want.variant is None or have.variant == want.variant


def descriptor_platform(descriptor: dict[str, Any]) -> Platform | None:
    """The platform a manifest-list entry declares, or None when it declares none."""
    declared = descriptor.get("platform")
    if not isinstance(declared, dict) or not declared.get("os") or not declared.get("architecture"):
        return None
    return Platform(str(declared["os"]), str(declared["architecture"]), declared.get("variant") or None)


def is_attestation(descriptor: dict[str, Any]) -> bool:
    """Buildx stores provenance and SBOMs as index entries for the pseudo-platform unknown/unknown."""
    platform = descriptor_platform(descriptor)
    annotations = descriptor.get("annotations") or {}
    return (platform is not None and platform.os == "unknown") or "vnd.docker.reference.type" in annotations


def available_platforms(index: dict[str, Any]) -> list[Platform]:
    platforms = []
    for descriptor in index.get("manifests") or []:
        platform = descriptor_platform(descriptor)
        if platform is not None and not is_attestation(descriptor) and platform not in platforms:
            platforms.append(platform)
    return platforms


def select_manifest(index: dict[str, Any], platform: Platform, *, image: str) -> dict[str, Any]:
    """The descriptor in `index` for `platform`; ImageError listing the available platforms if none fits."""
    matches: list[tuple[bool, dict[str, Any]]] = []
    for descriptor in index.get("manifests") or []:
        offered = descriptor_platform(descriptor)
        if offered is None or is_attestation(descriptor):
            continue
        if not satisfies(offered, platform):
            continue
        matches.append((offered.variant is not None, descriptor))
    if not matches:
        available = ", ".join(str(p) for p in available_platforms(index)) or "no platforms declared"
        raise ImageError(f"{image}: no manifest for platform {platform}; the image is available for: {available}")
    # Stable sort: entries without a variant first, otherwise the index's own order.
    matches.sort(key=lambda match: match[0])
    return matches[0][1]
