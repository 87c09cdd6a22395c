"""Images from an OCI image layout directory: `oci:PATH[:TAG]`.

The layout holds ``oci-layout``, ``index.json`` and content-addressed ``blobs/<alg>/<hex>``. Nothing
in it is trusted: the manifest and config are checked against their descriptors' digests and sizes,
and each layer is verified by the blob cache while it is copied in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..progress import NullProgress, Progress
from .archive import check_config_platform, check_diff_ids
from .blobcache import BlobCache, BlobError
from .errors import ImageError
from .metadata import parse_json_object
from .model import Image, LayerBlob, Platform
from .platforms import select_manifest

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_LIMIT = 4 << 20
CONFIG_LIMIT = 64 << 20


def parse_oci_location(text: str) -> tuple[Path, str | None]:
    """`PATH[:TAG]` (without the ``oci:`` prefix); TAG may itself hold colons, as in ``PATH:host:5000/app:1``.

    The path is the shortest prefix ending before a colon that is an existing directory; failing
    that, a trailing ``:TAG`` without slashes is split off.
    """
    if Path(text).is_dir():
        return Path(text), None
    for position, character in enumerate(text):
        if character == ":" and position and Path(text[:position]).is_dir():
            return Path(text[:position]), text[position + 1:] or None
    path, _, tag = text.rpartition(":")
    if not path or not tag or "/" in tag:
        return Path(text), None
    return Path(path), tag


def read_oci_layout(path: Path, tag: str | None, *, platform: Platform, cache: BlobCache,
                    progress: Progress = NullProgress()) -> Image:
    image = f"oci:{path}" + (f":{tag}" if tag else "")
    layout = _Layout(path, image)
    descriptor = _choose_descriptor(layout, tag, platform)
    seen = set()
    while descriptor.get("mediaType") in INDEX_TYPES:
        if descriptor["digest"] in seen:
            raise ImageError(f"{image}: index {descriptor['digest']} refers to itself")
        seen.add(descriptor["digest"])
        descriptor = select_manifest(layout.json_blob(descriptor, MANIFEST_LIMIT), platform, image=image)
    manifest = layout.json_blob(descriptor, MANIFEST_LIMIT)
    if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
        descriptor = select_manifest(manifest, platform, image=image)
        manifest = layout.json_blob(descriptor, MANIFEST_LIMIT)
    config_descriptor = _descriptor(manifest.get("config"), image=image, what="the manifest's config")
    config = layout.json_blob(config_descriptor, CONFIG_LIMIT)
    check_config_platform(config, platform, image=image)
    layers = _store_layers(layout, manifest, config, cache, progress)
    check_diff_ids(layers, config, image=image)
    return Image(reference=image, platform=platform, config=config, config_digest=config_descriptor["digest"],
                 manifest_digest=descriptor["digest"], layers=layers)


class _Layout:
    def __init__(self, root: Path, image: str) -> None:
        self.root, self.image = root, image
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise ImageError(f"{image}: {root} is not an OCI image layout (it needs oci-layout and index.json)")

    def index(self) -> dict[str, Any]:
        return parse_json_object((self.root / "index.json").read_bytes(), image=self.image, what="index.json")

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm not in ("sha256", "sha384", "sha512") or not hex_digest.isalnum():
            raise ImageError(f"{self.image}: descriptor digest {digest!r} is not algorithm:hex")
        path = self.root / "blobs" / algorithm / hex_digest
        if not path.is_file():
            raise BlobError(self.image, digest, f"missing from the layout ({path})")
        return path

    def json_blob(self, descriptor: dict[str, Any], limit: int) -> dict[str, Any]:
        digest, size = descriptor["digest"], descriptor.get("size")
        with open(self.blob_path(digest), "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise BlobError(self.image, digest, f"larger than the {limit} bytes allowed for image metadata")
        if isinstance(size, int) and len(data) != size:
            raise BlobError(self.image, digest, f"is {len(data)} bytes, but its descriptor says {size}")
        algorithm, _, expected = digest.partition(":")
        actual = hashlib.new(algorithm, data).hexdigest()
        if actual != expected:
            raise BlobError(self.image, digest, f"digest mismatch: content hashes to {algorithm}:{actual}")
        return parse_json_object(data, image=self.image, what=f"blob {digest}")


def _choose_descriptor(layout: _Layout, tag: str | None, platform: Platform) -> dict[str, Any]:
    image = layout.image
    manifests = [_descriptor(d, image=image, what="an index.json entry") for d in layout.index().get("manifests") or []]
    if tag is not None:
        tagged = [d for d in manifests if (d.get("annotations") or {}).get(REF_NAME) == tag]
        if not tagged:
            names = sorted({(d.get("annotations") or {}).get(REF_NAME, "") for d in manifests} - {""})
            raise ImageError(f"{image}: no manifest tagged {tag!r} in index.json; tags present: "
                             f"{', '.join(names) or 'none'}")
        manifests = tagged
    if len(manifests) == 1:
        return manifests[0]
    if not manifests:
        raise ImageError(f"{image}: index.json lists no manifests")
    tagged = any(REF_NAME in (d.get("annotations") or {}) for d in manifests)
    if not tagged and all(d.get("platform") for d in manifests):  # one untagged multi-platform image
        return select_manifest({"manifests": manifests}, platform, image=image)
    names = sorted({(d.get("annotations") or {}).get(REF_NAME, d["digest"]) for d in manifests})
    raise ImageError(f"{image}: index.json lists {len(manifests)} manifests; pick one with oci:PATH:TAG "
                     f"({', '.join(names)})")


def _descriptor(value: Any, *, image: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str):
        raise ImageError(f"{image}: {what} is not a descriptor with a digest")
    return value


def _store_layers(layout: _Layout, manifest: dict[str, Any], config: dict[str, Any], cache: BlobCache,
                  progress: Progress) -> list[LayerBlob]:
    image = layout.image
    descriptors = [_descriptor(d, image=image, what="a manifest layer") for d in manifest.get("layers") or []]
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(descriptors):
        raise ImageError(f"{image}: the manifest lists {len(descriptors)} layers, "
                         f"but the config lists {len(diff_ids)} diff_ids")
    total = sum(d.get("size") or 0 for d in descriptors)
    layers = []
    with progress.task(f"Reading layers of {image}", total=total or None) as task:
        for descriptor, diff_id in zip(descriptors, diff_ids):
            digest, size, media_type = descriptor["digest"], descriptor.get("size"), descriptor.get("mediaType", "")
            cached = cache.lookup(digest=digest, diff_id=diff_id, media_type=media_type, size=size or 0)
            if cached is not None:
                task.advance(size or 0)
                layers.append(cached)
                continue
            with open(layout.blob_path(digest), "rb") as blob:
                layers.append(cache.store_layer(blob, image=image, digest=digest, size=size,
                                                media_type=media_type, diff_id=diff_id, task=task))
    return layers
