"""Images from an OCI image layout directory: `oci:PATH[:TAG]`.

The layout holds ``oci-layout``, ``index.json`` and content-addressed ``blobs/<alg>/<hex>``. Nothing
in it is trusted: the manifest and config are checked against their descriptors' digests and sizes,
and each layer is verified by the blob cache while it is copied in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..bounded import read_at_most
from ..progress import NullProgress, Progress
from .archive import check_config_platform, check_diff_ids
from .blobcache import BlobCache, BlobError
from .digest import Digest
from .errors import ImageError
from .metadata import (
    MAX_IMAGE_CONFIG_BYTES,
    MAX_IMAGE_MANIFEST_BYTES,
    Descriptor,
    config_diff_ids,
    index_entries,
    manifest_layers,
    parse_json_object,
)
from .model import Image, LayerBlob, Platform
from .platforms import select_manifest

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


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
    seen: set[str] = set()
    manifest = layout.json_blob(descriptor, MAX_IMAGE_MANIFEST_BYTES)
    while descriptor.media_type in INDEX_TYPES or "manifests" in manifest:
        if descriptor.digest in seen:
            raise ImageError(f"{image}: index {descriptor.digest} refers to itself")
        seen.add(descriptor.digest)
        index_entries(manifest, image=image, what=f"index {descriptor.digest}")
        descriptor = Descriptor.parse(select_manifest(manifest, platform, image=image), image=image,
                                      what=f"index {descriptor.digest} entry")
        manifest = layout.json_blob(descriptor, MAX_IMAGE_MANIFEST_BYTES)
    config_descriptor = Descriptor.parse(manifest.get("config"), image=image, what="the manifest's config")
    config = layout.json_blob(config_descriptor, MAX_IMAGE_CONFIG_BYTES)
    check_config_platform(config, platform, image=image)
    layers = _store_layers(layout, manifest, config, cache, progress)
    check_diff_ids(layers, config, image=image)
    return Image(reference=image, platform=platform, config=config, config_digest=config_descriptor.digest,
                 manifest_digest=descriptor.digest, layers=layers)


class _Layout:
    def __init__(self, root: Path, image: str) -> None:
        self.root, self.image = root, image
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise ImageError(f"{image}: {root} is not an OCI image layout (it needs oci-layout and index.json)")

    def index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        with open(path, "rb") as handle:
            data = read_at_most(handle, MAX_IMAGE_MANIFEST_BYTES)
        if data is None:
            raise ImageError(f"{self.image}: {path} is larger than the {MAX_IMAGE_MANIFEST_BYTES} bytes allowed for an index")
        return parse_json_object(data, image=self.image, what="index.json")

    def blob_path(self, digest: Digest) -> Path:
        path = self.root / "blobs" / digest.algorithm / digest.hex
        if not path.is_file():
            raise BlobError(self.image, digest, f"missing from the layout ({path})")
        return path

    def json_blob(self, descriptor: Descriptor, limit: int) -> dict[str, Any]:
        digest, size = descriptor.digest, descriptor.size
        if size > limit:
            raise BlobError(self.image, digest, f"its descriptor says {size} bytes, more than the {limit} bytes "
                                                "allowed for image metadata")
        with open(self.blob_path(digest), "rb") as handle:
            data = read_at_most(handle, size)
        if data is None or len(data) != size:
            raise BlobError(self.image, digest, f"is not the {size} bytes its descriptor says")
        actual = Digest.of(data, digest.algorithm)
        if actual != digest:
            raise BlobError(self.image, digest, f"digest mismatch: content hashes to {actual}")
        return parse_json_object(data, image=self.image, what=f"blob {digest}")


def _choose_descriptor(layout: _Layout, tag: str | None, platform: Platform) -> Descriptor:
    image = layout.image
    index = layout.index()
    manifests = index_entries(index, image=image, what="index.json")
    if tag is not None:
        tagged = [d for d in manifests if d.annotations.get(REF_NAME) == tag]
        if not tagged:
            names = sorted({str(d.annotations.get(REF_NAME, "")) for d in manifests} - {""})
            raise ImageError(f"{image}: no manifest tagged {tag!r} in index.json; tags present: "
                             f"{', '.join(names) or 'none'}")
        manifests = tagged
    if len(manifests) == 1:
        return manifests[0]
    if not manifests:
        raise ImageError(f"{image}: index.json lists no manifests")
    any_tagged = any(REF_NAME in d.annotations for d in manifests)
    if not any_tagged and all(d.fields.get("platform") for d in manifests):  # one untagged multi-platform image
        chosen = select_manifest({"manifests": [d.fields for d in manifests]}, platform, image=image)
        return Descriptor.parse(chosen, image=image, what="an index.json entry")
    names = sorted({str(d.annotations.get(REF_NAME, d.digest)) for d in manifests})
    raise ImageError(f"{image}: index.json lists {len(manifests)} manifests; pick one with oci:PATH:TAG "
                     f"({', '.join(names)})")


def _store_layers(layout: _Layout, manifest: dict[str, Any], config: dict[str, Any], cache: BlobCache,
                  progress: Progress) -> list[LayerBlob]:
    image = layout.image
    descriptors = manifest_layers(manifest, image=image, what="the manifest")
    diff_ids = config_diff_ids(config, image=image)
    if len(diff_ids) != len(descriptors):
        raise ImageError(f"{image}: the manifest lists {len(descriptors)} layers, "
                         f"but the config lists {len(diff_ids)} diff_ids")
    total = sum(d.size for d in descriptors)
    layers = []
    with progress.task(f"Reading layers of {image}", total=total or None) as task:
        for descriptor, diff_id in zip(descriptors, diff_ids, strict=True):
            cached = cache.lookup(digest=descriptor.digest, diff_id=diff_id, media_type=descriptor.media_type,
                                  size=descriptor.size)
            if cached is not None:
                task.skip(descriptor.size)  # already verified and stored: no work, not a transfer
                layers.append(cached)
                continue
            with open(layout.blob_path(descriptor.digest), "rb") as blob:
                layers.append(cache.store_layer(blob, image=image, digest=descriptor.digest, size=descriptor.size,
                                                media_type=descriptor.media_type, diff_id=diff_id, task=task))
    return layers
