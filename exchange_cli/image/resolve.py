"""Which source an image is read from: a registry, the Docker engine, a docker-save file, an OCI layout.

``docker-archive:PATH[:REF]`` and ``oci:PATH[:TAG]`` name their source themselves. Otherwise
``--source`` decides; ``auto`` reads from the Docker engine only an image that exists there and
nowhere else (no RepoDigests: built locally, never pushed), and from the registry everything else,
because a registry's manifest digest pins the image and the engine's copy may differ from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..progress import NullProgress, Progress
from ..reference import ReferenceError, parse_reference
from .blobcache import BlobCache
from .errors import ImageError
from .model import DEFAULT_PLATFORM, Image, LayerStored, Platform

SOURCES = ("registry", "docker", "auto")
DOCKER_ARCHIVE_PREFIX = "docker-archive:"
OCI_PREFIX = "oci:"


@dataclass(frozen=True)
class ExportOptions:
    """Where an export (or a check) reads its images from, and into which layer cache: what `open_image`
    takes. Here rather than in export.py, so that a run that exports nothing need not load the exporter."""

    platform: Platform = DEFAULT_PLATFORM
    source: str = "auto"
    insecure_registries: tuple[str, ...] = ()
    cache: BlobCache = field(default_factory=BlobCache.default)
    # Images are looked up in this OCI layout by their ref.name annotation instead of in registries.
    oci_layout: Path | None = None


def open_image(image: str, *, platform: Platform, source: str = "auto", insecure_registries: Iterable[str] = (),
               oci_layout: Path | None = None, cache: BlobCache, progress: Progress = NullProgress(),
               layer_stored: LayerStored | None = None) -> Image:
    """Resolve `image` to verified layers in `cache`, from the source the prefix or `source` picks.

    With `oci_layout`, an unprefixed `image` is the ref.name of a manifest in that layout, whatever
    `source` says: demos and tests stand in for registries that way. A registry calls `layer_stored`
    for each layer as soon as it is in `cache`; other sources may not call it at all.
    """
    if source not in SOURCES:
        raise ValueError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    if image.startswith(DOCKER_ARCHIVE_PREFIX):
        from .archive import read_docker_archive

        path, reference = _split_archive_location(image[len(DOCKER_ARCHIVE_PREFIX):])
        return read_docker_archive(path, reference=reference, platform=platform, cache=cache, progress=progress)
    if image.startswith(OCI_PREFIX):
        from .oci_layout import parse_oci_location, read_oci_layout

        path, tag = parse_oci_location(image[len(OCI_PREFIX):])
        return read_oci_layout(path, tag, platform=platform, cache=cache, progress=progress)
    if oci_layout is not None:
        from .oci_layout import read_oci_layout

        return read_oci_layout(Path(oci_layout), image, platform=platform, cache=cache, progress=progress)
    if source == "docker":
        from .docker_engine import fetch_docker_image

        return fetch_docker_image(image, platform, cache, progress=progress)
    if source == "auto" and (client := _engine_with_only_local(image)) is not None:
        from .docker_engine import fetch_docker_image

        with closing(client):
            return fetch_docker_image(image, platform, cache, progress=progress, client=client)
    return _from_registry(image, platform=platform, insecure_registries=insecure_registries, cache=cache,
                          progress=progress, layer_stored=layer_stored)


def _from_registry(image: str, *, platform: Platform, insecure_registries: Iterable[str], cache: BlobCache,
                   progress: Progress, layer_stored: LayerStored | None) -> Image:
    from .registry import fetch_registry_image

    try:
        reference = parse_reference(image)
    except ReferenceError as exc:
        raise ImageError(f"{image}: not a valid image reference: {exc}") from exc
    return fetch_registry_image(reference, platform, cache, insecure_registries=tuple(insecure_registries),
                                progress=progress, layer_stored=layer_stored)


def _engine_with_only_local(image: str) -> Any | None:
    """A client for the reachable engine that has `image` while no registry does; None otherwise."""
    from .docker_engine import DockerUnavailable, connect, find_local_image, is_only_local

    try:
        client = connect()
    except DockerUnavailable:
        return None
    local_image = find_local_image(client, image)
    if local_image is not None and is_only_local(local_image):
        return client
    client.close()
    return None


def _split_archive_location(text: str) -> tuple[Path, str | None]:
    """`PATH[:REPO:TAG]`: the path is everything up to the first colon that leaves an existing file."""
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    path, _, reference = text.partition(":")
    return Path(path), reference or None
